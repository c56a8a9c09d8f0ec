"""Load generators: wrk against our HTTP API, pgbench against the database itself."""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

WRK_SCRIPT = Path(__file__).resolve().parent / "wrk" / "api.lua"
PGBENCH_DEBIT = Path(__file__).resolve().parent / "pgbench_debit.sql"


@dataclass(frozen=True)
class LoadResult:
    name: str
    clients: int
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int
    completed: int
    # CPU per completed request (µs) of the app's processes and of the database's backends (API runs only).
    app_cpu_us: float | None = None
    database_cpu_us: float | None = None


def run_wrk(
    name: str, base_url: str, *, keys: list[str], mode: str, customers: tuple[int, int], clients: int, seconds: int
) -> LoadResult:
    env = {
        **os.environ,
        "LS_KEYS": ",".join(keys),
        "LS_MODE": mode,
        "LS_LO": str(customers[0]),
        "LS_HI": str(customers[1]),
    }
    command = [
        "wrk",
        "-t",
        str(min(2, clients)),
        "-c",
        str(clients),
        "-d",
        f"{seconds}s",
        "--latency",
        "-s",
        str(WRK_SCRIPT),
        base_url,
    ]
    output = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    data = json.loads(output.split("WRK_JSON ", 1)[1].splitlines()[0])
    errors = data["non_2xx"] + data["socket_errors"]
    return LoadResult(
        name=name,
        clients=clients,
        requests_per_second=round(data["requests"] / (data["duration_us"] / 1e6), 1),
        p50_ms=round(data["p50_us"] / 1000, 2),
        p99_ms=round(data["p99_us"] / 1000, 2),
        errors=errors,
        completed=data["requests"] - errors,
    )


def run_pgbench(
    name: str, database: str, *, clients: int, seconds: int, script: list[str], defines: dict | None = None
) -> LoadResult:
    command = ["pgbench", "-n", "-c", str(clients), "-j", str(min(2, clients)), "-T", str(seconds), "-r", *script]
    for variable, value in (defines or {}).items():
        command += ["-D", f"{variable}={value}"]
    output = subprocess.run([*command, database], capture_output=True, text=True, check=True).stdout
    tps = float(re.search(r"tps = ([\d.]+)", output).group(1))
    latency = float(re.search(r"latency average = ([\d.]+) ms", output).group(1))
    failed = re.search(r"number of failed transactions: (\d+)", output)
    processed = int(re.search(r"number of transactions actually processed: (\d+)", output).group(1))
    return LoadResult(
        name, clients, round(tps, 1), round(latency, 2), float("nan"), int(failed.group(1)) if failed else 0, processed
    )


def init_pgbench(database: str, *, scale: int = 10) -> None:
    subprocess.run(["pgbench", "-i", "-q", "-s", str(scale), database], capture_output=True, check=True)
