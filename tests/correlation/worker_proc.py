"""A correlation worker process for the exactly-once tests: drains the inbox of the data
directory given on the command line in small batches."""

from __future__ import annotations

import sys
from pathlib import Path

from servicegraph.bootstrap import bootstrap
from servicegraph.config import Settings


def main() -> None:
    data_dir, batch = Path(sys.argv[1]), int(sys.argv[2])
    services = bootstrap(Settings(data_dir=data_dir))
    idle = 0
    while idle < 3:
        result = services.correlator.process_pending(batch)
        idle = idle + 1 if result.events == 0 else 0
    services.close()


if __name__ == "__main__":
    main()
