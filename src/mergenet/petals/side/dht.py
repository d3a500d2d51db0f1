"""A swarm's bootstrap DHT peer that also writes its multiaddrs to a file.

Servers join with ``--initial_peers /ip4/HOST/tcp/PORT/p2p/PEER_ID``; the peer id is known
only once the DHT runs. ``petals.cli.run_dht`` logs it; this peer also writes it to
``--maddr-file`` so that a container (or script) can wait for the file and read it.

Usage: ``python -m mergenet.petals.side.dht --host-maddrs /ip4/0.0.0.0/tcp/31337
--maddr-file /swarm/dht.maddr [--identity-path KEY]``.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host-maddrs", nargs="+", default=["/ip4/127.0.0.1/tcp/0"])
    parser.add_argument("--announce-maddrs", nargs="*", default=None)
    parser.add_argument("--maddr-file", required=True)
    parser.add_argument("--identity-path", default=None)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    out = Path(args.maddr_file)
    out.unlink(missing_ok=True)  # a file left by an earlier run would name a dead peer

    from hivemind import DHT

    dht = DHT(
        start=True,
        host_maddrs=args.host_maddrs,
        announce_maddrs=args.announce_maddrs,
        identity_path=args.identity_path,
        use_auto_relay=False,
    )
    maddrs = [str(m) for m in dht.get_visible_maddrs() if "/ip4/" in str(m)]
    tmp = out.with_suffix(".tmp")
    tmp.write_text("\n".join(maddrs) + "\n")
    tmp.rename(out)  # readers never see a half-written file
    print("visible multiaddresses: " + " ".join(maddrs), flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
