"""Verify the DKIM signatures of messages with dkimpy (python3-dkim), the keys looked up from a
DNS server: `dkim_verify.py SERVER FILE...` prints, as JSON, each file's result, with the d=, s=
and h= of its first signature. Run by the system python3 (with python3-dkim and dnspython) in the
network namespace where SERVER answers."""

import json
import sys
from email.parser import BytesHeaderParser

import dkim
import dns.resolver


def main() -> None:
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [sys.argv[1]]

    def txt(name: bytes, timeout: int = 5) -> bytes:
        try:
            answer = resolver.resolve(name.decode().rstrip("."), "TXT", lifetime=timeout)
        except dns.exception.DNSException:
            return b""
        return b"".join(answer[0].strings)

    results = {}
    for path in sys.argv[2:]:
        data = open(path, "rb").read()
        signature = BytesHeaderParser().parsebytes(data)["DKIM-Signature"]
        tags = {}
        for part in "".join((signature or "").split()).split(";"):
            key, _, value = part.partition("=")
            tags[key] = value
        results[path] = {"valid": bool(signature) and dkim.verify(data, dnsfunc=txt), "d": tags.get("d"),
                         "s": tags.get("s"), "h": tags.get("h", "").lower().split(":") if signature else []}
    print(json.dumps(results))


if __name__ == "__main__":
    main()
