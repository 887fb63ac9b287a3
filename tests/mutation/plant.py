#!/usr/bin/env python3
"""Plants one named defect into a checkout (used by tests/mutation/run.sh).

  plant.py ROOT NAME     -> edits ROOT in place, prints the file it changed; exit 3 if the code the
                            defect targets is not found (the code moved: update the pattern here)
  plant.py --list        -> the defect names, one per line, with their description

Patterns are searched in every C++ source under the listed folders, so a function that moves to
another file is still found.
"""
import pathlib
import re
import sys

# name: (description, folders, [(regex, replacement)], include lines to add if missing)
DEFECTS = {
    "auth-header-unverified": (
        "TLS auth header x-iroh-relay-client-auth-v1 accepted without checking its signature",
        ["server"],
        [(r"relay::verify_key_material\(\*auth, ekm\)",
          "(relay::verify_key_material(*auth, ekm) || true)")],
    ),
    "pkarr-204-before-commit": (
        "PUT /pkarr answered 204 before the SQLite commit (the put runs detached)",
        ["server"],
        [(r"auto put = api->store\.async_put\((std::move\(std::get<pkarr::SignedPacket>\(\*parsed\)\))\);\n"
          r"(\s*)PkarrPutResult result = co_await std::move\(put\);",
          r"boost::asio::co_spawn(co_await boost::asio::this_coro::executor, "
          r"api->store.async_put(\1), boost::asio::detached);\n"
          r"\2PkarrPutResult result = PkarrPutOutcome::Inserted;"),
         (r"\A", "#include <boost/asio/co_spawn.hpp>\n#include <boost/asio/detached.hpp>\n"
                 "#include <boost/asio/this_coro.hpp>\n")],
    ),
    "rx-limit-no-slowdown": (
        "receive rate limit sends Status(RateLimited) but never pauses reading",
        ["server"],
        [(r"co_await pause_until\(\*resume\);", "(void)*resume;")],
    ),
    "reload-cert-error-ignored": (
        "reload with an unreadable certificate is applied anyway (access list changes)",
        ["server"],
        [(r"throw config::ConfigError\(next\.source\.string\(\), 0, \"tls\.manual_cert_path\", e\.what\(\)\);",
          "(void)e;")],
    ),
    "reload-service-rejection-ignored": (
        "reload that a service rejects is applied anyway (no rollback, reports success)",
        ["server"],
        [(r"(log::error\(\"reload rejected by \"[\s\S]*?\);\s*)d\.relay->apply\(old\);", r"\1"),
         (r"(log::error\(\"restoring \"[^}]*\}\s*\}\s*)return false;", r"\1")],
    ),
    "stun-xor-port-off-by-one": (
        "STUN XOR-MAPPED-ADDRESS port off by one (legacy MAPPED-ADDRESS still right)",
        ["stun"],
        [(r"if \(xored\) port \^= static_cast<std::uint16_t>\(kMagicCookie >> 16\);",
          "if (xored) port = static_cast<std::uint16_t>((port + 1) ^ (kMagicCookie >> 16));")],
    ),
    "pong-disabled": (
        "relay never answers a client Ping with Pong",
        ["server"],
        [(r"if \(auto pong = relay::encode_server_frame\(relay::Pong\{ping->data\}, version\(\)\)\) \{",
          "if (auto pong = relay::encode_server_frame(relay::Pong{ping->data}, version()); "
          "false && pong) {")],
    ),
}


def sources(root, folders):
    for folder in folders:
        for path in sorted((root / folder).rglob("*")):
            if path.suffix in (".cpp", ".hpp", ".h", ".cc") and path.is_file():
                yield path


def plant(root, name):
    _, folders, edits = DEFECTS[name]
    first, rest = edits[0], edits[1:]
    for path in sources(root, folders):
        text = path.read_text()
        if not re.search(first[0], text):
            continue
        text = re.sub(first[0], first[1], text, count=1)
        for pattern, replacement in rest:
            new = re.sub(pattern, replacement, text, count=1)
            if new == text:
                print(f"{name}: second pattern not found in {path}", file=sys.stderr)
                return 3
            text = new
        path.write_text(text)
        print(path.relative_to(root))
        return 0
    print(f"{name}: pattern not found under {folders}", file=sys.stderr)
    return 3


if __name__ == "__main__":
    if sys.argv[1:] == ["--list"]:
        for name, (desc, _, _) in DEFECTS.items():
            print(f"{name}\t{desc}")
        sys.exit(0)
    if len(sys.argv) != 3 or sys.argv[2] not in DEFECTS:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(plant(pathlib.Path(sys.argv[1]), sys.argv[2]))
