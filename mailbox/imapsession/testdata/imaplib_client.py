"""Drive the server with Python's standard imaplib, an IMAP client written
independently of go-imap. Usage: imaplib_client.py HOST PORT USER PASSWORD.
Exits non-zero with a message on the first unexpected answer."""
import imaplib
import re
import sys
import time

host, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
checks = 0


def ok(resp, what):
    global checks
    typ, data = resp
    if typ != "OK":
        sys.exit(f"{what}: {typ} {data!r}")
    checks += 1
    return data


def no(resp, what):
    global checks
    typ, data = resp
    if typ == "OK":
        sys.exit(f"{what}: expected a failure, got OK {data!r}")
    checks += 1


M = imaplib.IMAP4(host, port)
ok(M.login(user, password), "LOGIN")
caps = ok(M.capability(), "CAPABILITY")[0].decode()
for cap in ("IMAP4rev1", "IDLE", "UIDPLUS", "MOVE"):
    if cap not in caps:
        sys.exit(f"CAPABILITY lacks {cap}: {caps}")

ok(M.create("Py/Sub"), "CREATE")
listing = b" ".join(ok(M.list(), "LIST")).decode()
if '"Py/Sub"' not in listing and "Py/Sub" not in listing:
    sys.exit(f"LIST lacks Py/Sub: {listing}")
ok(M.subscribe("Py"), "SUBSCRIBE")
if b"Py" not in b" ".join(ok(M.lsub(), "LSUB")):
    sys.exit("LSUB lacks Py")

raw = (b"From: Py <py@example.com>\r\nTo: alice@example.com\r\nSubject: from python\r\n"
       b"Message-ID: <py1@example.com>\r\n\r\nHello from imaplib, a unique pythonword.\r\n")
data = ok(M.append("INBOX", r"(\Flagged)", imaplib.Time2Internaldate(time.time()), raw), "APPEND")
if b"APPENDUID" not in data[0]:
    sys.exit(f"APPEND lacks APPENDUID: {data!r}")
ok(M.append("INBOX", None, None, raw.replace(b"python", b"second")), "APPEND 2")

typ, data = M.select("INBOX")
if typ != "OK" or int(data[0]) != 2:
    sys.exit(f"SELECT: {typ} {data!r}")
checks += 1

data = ok(M.fetch("1", "(UID FLAGS RFC822.SIZE BODY.PEEK[])"), "FETCH")
if data[0][1] != raw:
    sys.exit(f"FETCH BODY[] differs: {data[0][1]!r}")
if b"\\Flagged" not in data[0][0]:
    sys.exit(f"FETCH FLAGS lacks \\Flagged: {data[0][0]!r}")
if f"RFC822.SIZE {len(raw)}".encode() not in data[0][0]:
    sys.exit(f"RFC822.SIZE wrong: {data[0][0]!r}")

data = ok(M.search(None, "BODY", "pythonword"), "SEARCH BODY")
if data[0].split() != [b"1"]:
    sys.exit(f"SEARCH BODY: {data!r}")
data = ok(M.uid("SEARCH", None, "FLAGGED"), "UID SEARCH")
if data[0].split() != [b"1"]:
    sys.exit(f"UID SEARCH FLAGGED: {data!r}")

data = ok(M.store("2", "+FLAGS", r"(\Seen $Py)"), "STORE")
if b"$Py" not in data[0]:
    sys.exit(f"STORE answer: {data!r}")
data = ok(M.fetch("2", "(FLAGS)"), "FETCH FLAGS")
if b"\\Seen" not in data[0] or b"$Py" not in data[0]:
    sys.exit(f"flags after STORE: {data!r}")

data = ok(M.copy("1", "Py"), "COPY")
typ, data = M.status("Py", "(MESSAGES UIDNEXT UNSEEN)")
if typ != "OK" or b"MESSAGES 1" not in data[0]:
    sys.exit(f"STATUS Py: {typ} {data!r}")
checks += 1

typ, data = M.uid("MOVE", "2", "Py/Sub")
if typ != "OK":
    sys.exit(f"UID MOVE: {typ} {data!r}")
checks += 1

ok(M.store("1", "+FLAGS", r"(\Deleted)"), "STORE Deleted")
ok(M.expunge(), "EXPUNGE")
typ, data = M.select("INBOX")
if int(data[0]) != 0:
    sys.exit(f"INBOX after EXPUNGE and MOVE: {data!r}")
checks += 1

no(M.select("Nonexistent"), "SELECT missing")
ok(M.rename("Py/Sub", "Py/Renamed"), "RENAME")
ok(M.select("Py/Renamed", readonly=True), "EXAMINE")
no(M.store("1", "+FLAGS", r"(\Seen)"), "STORE in EXAMINE")
ok(M.close(), "CLOSE")
ok(M.delete("Py/Renamed"), "DELETE")
ok(M.noop(), "NOOP")
M.logout()
print(f"imaplib: {checks} checks passed")
