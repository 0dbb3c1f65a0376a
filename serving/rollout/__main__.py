"""``python -m serving.rollout --version N``: load version N on both servers beside the one serving,
check it, switch, and unload the old one after it drained (``make rollout VERSION=N``; an older N
rolls back). ``--canary PCT`` keeps the old version the default and sends PCT % of clients to N;
``--promote`` and ``--rollback`` end the canary. ``--compose`` acts on the compose stack instead of
the native one (``make serve``, found through run/current). Exit status: 0 done, 1 the version was
refused (it never received traffic; the old one kept serving), 2 a usage or manifest problem, 3 a
server refused a step or did not answer.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path

from serving.native.run import CURRENT, NativeRun
from serving.rollout import settings as rollout_settings
from serving.rollout.core import Rollout
from serving.rollout.gateway import Gateway
from serving.rollout.log import Action, Event, RolloutLog
from serving.rollout.servers import ModelServer, TFServing, TorchServe
from serving.rollout.settings import SERVERS, RolloutSettings, Target
from training.manifest import Manifest, ManifestError

OK, REFUSED, USAGE, FAILED = 0, 1, 2, 3


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m serving.rollout", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--version", type=int, help="the version to serve (newer: a rollout; older: a rollback)")
    what.add_argument("--promote", action="store_true", help="make the canary the default and unload the old version")
    what.add_argument("--rollback", action="store_true", help="drop the canary; the old version serves alone")
    p.add_argument(
        "--canary", type=float, metavar="PCT", help="with --version: send PCT %% of clients to it, keep the old"
    )
    p.add_argument("--servers", default=",".join(SERVERS), help="comma-separated (default: %(default)s)")
    p.add_argument(
        "--compose", action="store_true", help="the compose stack (its published ports) instead of the native one"
    )
    p.add_argument("--run-dir", type=Path, default=CURRENT, help="the native stack's run folder (default: %(default)s)")
    p.add_argument("--artifacts", type=Path, help="default: the native stack's; with --compose ./artifacts (ARTIFACTS)")
    p.add_argument("--gateway", help="the gateway's URL for a canary split (default: the stack's)")
    p.add_argument("--drain-s", type=float, default=rollout_settings.DRAIN_S, help="default: %(default)s")
    p.add_argument("--log", type=Path, help="write the typed log here (default: beside the run's logs)")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    if args.canary is not None and args.version is None:
        p.error("--canary goes with --version")
    return args


def build_settings(args: argparse.Namespace) -> RolloutSettings:
    action = (
        Action.PROMOTE
        if args.promote
        else Action.ROLLBACK
        if args.rollback
        else Action.CANARY
        if args.canary is not None
        else Action.ROLL
    )
    servers = tuple(s.strip() for s in args.servers.split(",") if s.strip())
    if args.compose:
        import os

        artifacts = args.artifacts or Path(os.environ.get("ARTIFACTS", "artifacts"))
        s = rollout_settings.compose(artifacts, action, args.version, servers, args.canary, args.drain_s)
    else:
        run = NativeRun.load(args.run_dir)
        s = rollout_settings.native(run, action, args.version, servers, args.canary, args.drain_s)
        if args.artifacts is not None and args.artifacts.resolve() != run.artifacts:
            raise ValueError(f"the native stack serves {run.artifacts}, not {args.artifacts}")
    if args.gateway:
        from dataclasses import replace

        s = replace(s, endpoints=replace(s.endpoints, gateway=args.gateway))
    return s


def make_servers(s: RolloutSettings) -> list[ModelServer]:
    e = s.endpoints
    out: list[ModelServer] = []
    if "tfserving" in s.servers:
        out.append(TFServing(e.tfserving_rest, e.tfserving_grpc, s.tf_base_path, s.tf_model_config))
    if "torchserve" in s.servers:
        out.append(
            TorchServe(e.torchserve_inference, e.torchserve_management, s.artifacts, s.ts_model_store, s.ts_config)
        )
    return out


def run(s: RolloutSettings, notify: Callable[[str], None] = print) -> tuple[RolloutLog, int]:
    """Check the manifest, then roll; the log and the exit status."""
    manifest = Manifest.load(s.artifacts)
    if s.version is not None:
        v = manifest.version(s.version)
        changed = manifest.changed_files(s.version)
        if changed:
            raise ManifestError(f"version {s.version}'s files differ from the manifest's hashes: {', '.join(changed)}")
        if not v.ok and v.bad is not None:
            notify(f"note: the manifest marks version {s.version} bad ({v.bad.kind}); the servers' check decides")
    servers = make_servers(s)
    gateway = Gateway(s.endpoints.gateway, s.api_key) if s.endpoints.gateway else None
    try:
        rollout = Rollout(
            s,
            servers,
            lambda backend, version, probs: manifest.version(version).verify(backend, probs),
            manifest.check_rows(),
            gateway,
            notify=notify,
        )
        log = rollout.run()
    finally:
        for server in servers:
            server.close()
        if gateway is not None:
            gateway.close()
    if log.ok:
        return log, OK
    return log, REFUSED if any(st.event is Event.REFUSED for st in log.steps) else FAILED


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        s = build_settings(args)
        what = f"version {s.version}" if s.version is not None else "the canary"
        print(f"{s.action} {what} on {', '.join(s.servers)} ({s.target})", flush=True)
        log, status = run(s, notify=lambda line: print(line, flush=True))
    except (ManifestError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USAGE
    out = args.log or _default_log(s, args)
    log.write(out)
    print(("done: " if log.ok else "error: ") + log.message, file=sys.stdout if log.ok else sys.stderr)
    for server in log.servers:
        took = log.time_to_serving(server)
        if took is not None:
            print(f"  {server}: load requested -> serving version {log.version} in {took:.1f} s")
    print(f"log: {out}")
    return status


def _default_log(s: RolloutSettings, args: argparse.Namespace) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder = args.run_dir.resolve() if s.target is Target.NATIVE else Path("run") / "compose"
    return folder / "rollouts" / f"{stamp}-{s.action}.json"


if __name__ == "__main__":
    sys.exit(main())
