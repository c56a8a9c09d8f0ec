from litesubs.cli import main

raise SystemExit(main())
