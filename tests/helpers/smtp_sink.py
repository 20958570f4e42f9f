"""A minimal SMTP server for tests (asyncore's smtpd is gone since Python 3.12): it takes every
message and writes it, as received, to <directory>/<n>.eml, and its envelope recipients to <n>.rcpt.
Run: smtp_sink.py <directory> <port> [<address>]; it prints "listening" once it accepts connections
on <address> (default 127.0.0.1), port <port>."""

import itertools
import socketserver
import sys
from pathlib import Path

COUNTER = itertools.count(1)


class Session(socketserver.StreamRequestHandler):
    def reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        self.reply("220 sink")
        recipients = []
        for raw in self.rfile:
            command = raw.decode("ascii", "replace").strip()
            verb = command.split(" ", 1)[0].upper()
            if verb == "QUIT":
                self.reply("221 bye")
                return
            if verb == "RCPT":
                recipients.append(command.split(":", 1)[1].strip().strip("<>"))
            if verb != "DATA":
                self.reply("250 ok")
                continue
            self.reply("354 go on")
            lines = []
            for line in self.rfile:
                if line in (b".\r\n", b".\n"):
                    break
                lines.append(line[1:] if line.startswith(b".") else line)
            number = next(COUNTER)
            (self.server.directory / f"{number}.rcpt").write_text("".join(f"{rcpt}\n" for rcpt in recipients))
            (self.server.directory / f"{number}.eml").write_bytes(b"".join(lines))
            recipients = []
            self.reply("250 taken")


class Server(socketserver.TCPServer):
    allow_reuse_address = True


def main() -> None:
    server = Server((sys.argv[3] if len(sys.argv) > 3 else "127.0.0.1", int(sys.argv[2])), Session)
    server.directory = Path(sys.argv[1])
    print("listening", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
