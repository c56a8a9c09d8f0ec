"""The domain: every rule of Litesubs lives here, free of Reflex and of HTTP."""
