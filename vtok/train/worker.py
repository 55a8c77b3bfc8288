"""One extra process of a multi-worker `vtok train` (vtok.train.parallel), started by rank 0 as
`python -m vtok.train.worker STORE CONFIG_JSON RANK SOURCES...`; it writes nothing.

Any failure is one line on stderr and exit status 1; rank 0 then stops and names this rank.
"""

import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    store, config_json, rank, *sources = argv
    from vtok.train.parallel import Group, config_from_json
    from vtok.train.run import worker_training

    try:
        config = config_from_json(config_json)
        group = Group(int(rank), config.workers, Path(store))  # join first, so that rank 0 never waits in vain
        try:
            worker_training([Path(s) for s in sources], config, group)
        finally:
            group.close()
    except KeyboardInterrupt:  # Ctrl-C reached every process; rank 0 says so
        return 130
    except Exception as e:  # rank 0 reports that this worker failed; say why here
        print(f"vtok: training worker {rank}: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
