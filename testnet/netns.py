"""Real NATs on this machine: network namespaces, veth pairs, nftables masquerade and netem delay,
made and removed by the tests and benchmarks that use them (tests/integration/test_nat.py,
`python -m bench.network --nat`), and real node processes inside them. No link reaches the machine's
own namespace, so no packet leaves the machine.

    198.51.100.0/24 (TEST-NET-2, "public"): a bridge in namespace <p>-pub, the relay at 198.51.100.1
    NAT i: namespace <p>-nat<i>, wan 198.51.100.<10+i>, lan 10.0.<i>.1; masquerade out of wan, new
           inbound connections dropped (as home routers do), `delay_ms` of netem on its wan
    home i: namespace <p>-home<i>, 10.0.<i>.2, default route through NAT i

py-libp2p treats 10/8 as private and TEST-NET-2 as public, as it would a home LAN and the internet.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .process import NodeProcess, NodeStartFailed

RELAY_IP = "198.51.100.1"


def skip_reason() -> str | None:
    """Why these tests can't run here, or None."""
    if os.geteuid() != 0:
        return "network namespaces and NATs need root"
    missing = [tool for tool in ("ip", "nft", "tc") if shutil.which(tool) is None]
    if missing:
        return f"missing {', '.join(missing)} (apt-get install iproute2 nftables)"
    probe = f"swprobe{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode:
        return f"can't create a network namespace: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def _run(*cmd: str, stdin: str | None = None) -> str:
    done = subprocess.run(cmd, input=stdin, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed: {done.stderr.strip()}")
    return done.stdout


def _veth(one: tuple[str, str], other: tuple[str, str]) -> None:
    """A veth pair made with each (name, namespace) end inside its namespace from the start."""
    _run(
        "ip",
        "link",
        "add",
        one[0],
        "netns",
        one[1],
        "type",
        "veth",
        "peer",
        "name",
        other[0],
        "netns",
        other[1],
    )


def _ruleset(fully_random: bool) -> str:
    return f"""
table ip nat {{
  chain postrouting {{
    type nat hook postrouting priority srcnat; policy accept;
    oifname "wan" counter masquerade{" fully-random" if fully_random else ""}
  }}
}}
table ip filter {{
  chain forward {{
    type filter hook forward priority filter; policy drop;
    ct state established,related counter accept
    iifname "lan" oifname "wan" counter accept
    iifname "wan" ct state new counter drop
  }}
  chain input {{
    type filter hook input priority filter; policy accept;
    iifname "wan" ct state new counter drop
  }}
}}
"""


@dataclass
class Topology:
    """`nats` homes behind NATs and a public segment; `fully_random` lists the NATs that randomise ports."""

    nats: int
    fully_random: frozenset[int] = frozenset()
    delay_ms: int = 20  # 0 once up() found the kernel without netem
    prefix: str = field(default_factory=lambda: f"sw{os.getpid() % 100000}")
    made: list[str] = field(default_factory=list)

    @property
    def pub(self) -> str:
        return f"{self.prefix}-pub"

    def nat(self, i: int) -> str:
        return f"{self.prefix}-nat{i}"

    def home(self, i: int) -> str:
        return f"{self.prefix}-home{i}"

    @staticmethod
    def public_ip(i: int) -> str:
        """NAT i's address on the public segment."""
        return f"198.51.100.{10 + i}"

    @staticmethod
    def home_ip(i: int) -> str:
        return f"10.0.{i}.2"

    def _ns(self, name: str) -> None:
        _run("ip", "netns", "add", name)
        self.made.append(name)
        _run("ip", "-n", name, "link", "set", "lo", "up")

    def up(self) -> Topology:
        try:
            self._ns(self.pub)
            _run("ip", "-n", self.pub, "link", "add", "br0", "type", "bridge")
            _run("ip", "-n", self.pub, "addr", "add", f"{RELAY_IP}/24", "dev", "br0")
            _run("ip", "-n", self.pub, "link", "set", "br0", "up")
            for i in range(1, self.nats + 1):
                nat, home = self.nat(i), self.home(i)
                self._ns(nat)
                self._ns(home)
                # Each veth is made with both ends inside our namespaces: nothing in the machine's own.
                _veth(("wan", nat), (f"port{i}", self.pub))
                _run("ip", "-n", self.pub, "link", "set", f"port{i}", "master", "br0", "up")
                _run("ip", "-n", nat, "addr", "add", f"{self.public_ip(i)}/24", "dev", "wan")
                _run("ip", "-n", nat, "link", "set", "wan", "up")
                _veth(("lan", nat), ("eth0", home))
                _run("ip", "-n", nat, "addr", "add", f"10.0.{i}.1/24", "dev", "lan")
                _run("ip", "-n", nat, "link", "set", "lan", "up")
                _run("ip", "-n", home, "addr", "add", f"{self.home_ip(i)}/24", "dev", "eth0")
                _run("ip", "-n", home, "link", "set", "eth0", "up")
                _run("ip", "-n", home, "route", "add", "default", "via", f"10.0.{i}.1")
                _run("ip", "netns", "exec", nat, "sysctl", "-qw", "net.ipv4.ip_forward=1")
                _run("ip", "netns", "exec", nat, "nft", "-f", "-", stdin=_ruleset(i in self.fully_random))
                if self.delay_ms and not self._delay(nat):
                    self.delay_ms = 0
        except BaseException:
            self.down()
            raise
        return self

    def _delay(self, nat: str) -> bool:
        """netem's delay on the NAT's wan; False where the kernel has no netem (some don't ship it)."""
        done = subprocess.run(
            ["tc", "-n", nat, "qdisc", "add", "dev", "wan", "root", "netem", "delay", f"{self.delay_ms}ms"],
            capture_output=True,
            text=True,
        )
        if done.returncode and "unknown" in done.stderr:
            return False
        if done.returncode:
            raise RuntimeError(f"tc netem on {nat} failed: {done.stderr.strip()}")
        return True

    def down(self) -> None:
        for name in reversed(self.made):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
        self.made.clear()

    def __enter__(self) -> Topology:
        return self.up()

    def __exit__(self, *exc: object) -> None:
        self.down()

    def counters(self, i: int) -> dict[str, int]:
        """Packets counted by NAT i's rules: masqueraded, forwarded out, let back in, new inbound dropped."""
        rules = json.loads(_run("ip", "netns", "exec", self.nat(i), "nft", "-j", "list", "ruleset"))[
            "nftables"
        ]
        counts: dict[str, int] = {}
        for item in rules:
            rule = item.get("rule")
            if not rule:
                continue
            packets = next((e["counter"]["packets"] for e in rule["expr"] if "counter" in e), 0)
            text = json.dumps(rule["expr"])
            if "masquerade" in text:
                key = "masqueraded"
            elif '"drop"' in text:
                key = f"dropped_{rule['chain']}"
            elif "established" in text:
                key = "returned"
            else:
                key = "forwarded_out"
            counts[key] = counts.get(key, 0) + packets
        return counts

    def python(self, ns: str, code: str, *args: str, timeout: float = 60) -> str:
        """Run a Python snippet in namespace `ns` (the standard library only: it starts in 50 ms)."""
        done = subprocess.run(
            ["ip", "netns", "exec", ns, sys.executable, "-I", "-c", code, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode:
            raise RuntimeError(f"in {ns}: {done.stderr.strip()[-2000:]}")
        return done.stdout

    def tcp_connects(self, ns: str, ip: str, port: int, timeout: float = 2.0) -> bool:
        """Whether a plain TCP connection from `ns` to ip:port completes."""
        code = (
            "import socket, sys\n"
            "try:\n"
            f"    socket.create_connection(({ip!r}, {port}), timeout={timeout}).close(); print('yes')\n"
            "except OSError:\n"
            "    print('no')\n"
        )
        return self.python(ns, code).strip() == "yes"

    def http(
        self, ns: str, method: str, url: str, body: dict | None = None, timeout: float = 300
    ) -> tuple[int, str]:
        """An HTTP request made from inside `ns`: (status, body text)."""
        code = (
            "import json, sys, urllib.request, urllib.error\n"
            "data = sys.argv[3].encode() if sys.argv[3] else None\n"
            "req = urllib.request.Request(sys.argv[2], data=data, method=sys.argv[1], "
            "headers={'Content-Type': 'application/json'})\n"
            "try:\n"
            f"    r = urllib.request.urlopen(req, timeout={timeout}); s, t = r.status, r.read().decode()\n"
            "except urllib.error.HTTPError as e:\n"
            "    s, t = e.code, e.read().decode()\n"
            "print(json.dumps([s, t]))\n"
        )
        status, text = json.loads(
            self.python(ns, code, method, url, json.dumps(body) if body else "", timeout=timeout + 10)
        )
        return status, text


# What every node of these tests runs with, as testnet/ starts its nodes: no challenges (every node keeps an
# equal say), a short context, fast announcements, no acceleration learning.
NODE_ARGS = ("--announce-interval", "2", "--challenge-interval", "0", "--context-length", "1024")


class NsNode:
    """A real node process (`python -m swarm node start`) inside a namespace, listening for peers on `ip`."""

    def __init__(self, topology: Topology, ns: str, ip: str, data_dir: Path, *args: str) -> None:
        self.topology, self.ns, self.ip = topology, ns, ip
        self.process = NodeProcess(data_dir, "--p2p-host", ip, *NODE_ARGS, *args)
        self.process.args = ["ip", "netns", "exec", ns, *self.process.args]
        self.peer_id = ""
        self.multiaddr = ""

    @property
    def p2p_port(self) -> int:
        return self.process.p2p_port

    def launch(self) -> NsNode:
        self.process.launch()
        return self

    def wait_ready(self, timeout: float = 240.0) -> NsNode:
        """Until the node wrote its state file (it does once it serves HTTP and libp2p)."""
        state_file = self.process.data_dir / "node.json"
        deadline = time.monotonic() + timeout
        while not state_file.exists():
            assert self.process.process is not None
            if self.process.process.poll() is not None:
                raise NodeStartFailed(f"node in {self.ns} exited:\n{self.process.log()}")
            if time.monotonic() > deadline:
                self.process.stop()
                raise NodeStartFailed(
                    f"node in {self.ns} not ready after {timeout:g} s:\n{self.process.log()}"
                )
            time.sleep(0.2)
        state = json.loads(state_file.read_text())
        self.peer_id, self.multiaddr = state["peer_id"], state["p2p_addrs"][0]
        return self

    def get(self, path: str) -> Any:
        status, text = self.topology.http(self.ns, "GET", f"{self.process.url}{path}", timeout=30)
        assert status == 200, text
        return json.loads(text) if path != "/metrics" else text

    def post(self, path: str, body: dict[str, Any], timeout: float = 300) -> tuple[int, str]:
        return self.topology.http(self.ns, "POST", f"{self.process.url}{path}", body, timeout=timeout)

    def peer(self, peer_id: str) -> dict[str, Any] | None:
        """This node's peer table entry for `peer_id`."""
        return next((p for p in self.get("/v1/peers")["peers"] if p["peer_id"] == peer_id), None)

    def stop(self) -> None:
        self.process.stop()


def wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll `check` until it returns something true; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g} s")
        time.sleep(0.5)
