"""Run inside a list host, by Python 2.7 (GNU Mailman 2.1) or Python 3 (the fork):
    python list_dump.py PREFIX LIST...
prints JSON of each list as that Mailman's own code reads it: config.pck's attributes with every
byte string decoded strictly in the charset Mailman gives its language (list texts: the list's
preferred language; per-member attributes: the member's), the members through the member API,
and the archive's months with their message counts. The import e2e compares the old host's dump
with the new host's; a string the old charset cannot decode is marked, never guessed."""

import json
import pickle
import sys

sys.path.insert(0, sys.argv[1] + "/bin")
import paths  # noqa: E402,F401  (the prefix's Mailman on sys.path, as its bin/ scripts do)
from Mailman import MailList, Utils, mm_cfg  # noqa: E402
from Mailman.Archiver.HyperArch import HyperArchive  # noqa: E402
from Mailman.ListAdmin import HELDMSG  # noqa: E402

PER_MEMBER = ("members", "digest_members", "passwords", "usernames", "language", "user_options",
              "delivery_status", "topics_userinterest", "bounce_info")


def plain(value, charset):
    if isinstance(value, bytes):  # a Python 2 str
        try:
            return value.decode(charset)
        except UnicodeDecodeError:
            return "NOT %s: %r" % (charset, value)
    if isinstance(value, dict):
        return dict((str(plain(key, charset)), plain(item, charset)) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return [plain(item, charset) for item in value]
    if isinstance(value, (set, frozenset)):
        return sorted(plain(item, charset) for item in value)
    if hasattr(value, "__dict__"):
        return {"class": type(value).__name__, "state": plain(vars(value), charset)}
    return value


def charset_of(language):
    return Utils.GetCharSet(plain(language, "ascii"))


def config(name):
    with open("%s/%s/config.pck" % (mm_cfg.LIST_DATA_DIR, name), "rb") as fh:
        data = pickle.load(fh)
    data = dict((plain(key, "ascii"), item) for key, item in data.items())
    list_charset = charset_of(data["preferred_language"])
    languages = data.get("language", {})
    result = {}
    for key, value in data.items():
        if key in PER_MEMBER and isinstance(value, dict):
            result[key] = dict((plain(address, "ascii"), plain(item, charset_of(languages.get(address, data["preferred_language"]))))
                               for address, item in value.items())
        else:
            result[key] = plain(value, list_charset)
    return result


def members(mlist):
    found = {}
    for address in mlist.getMembers():
        charset = Utils.GetCharSet(mlist.getMemberLanguage(address))
        found[plain(address, "ascii")] = {
            "name": plain(mlist.getMemberName(address) or "", charset),
            "password": plain(mlist.getMemberPassword(address), charset),
            "language": plain(mlist.getMemberLanguage(address), "ascii"),
            "digest": bool(mlist.getMemberOption(address, mm_cfg.Digests)),
            "moderated": bool(mlist.getMemberOption(address, mm_cfg.Moderate)),
            "delivery": mlist.getDeliveryStatus(address),
            "options": mlist.user_options.get(address.lower(), 0),
        }
    return found


def list_pickle(name, filename):
    try:
        with open("%s/%s/%s" % (mm_cfg.LIST_DATA_DIR, name, filename), "rb") as fh:
            return pickle.load(fh)
    except IOError:
        return {}


def pending_subscriptions(name):
    """The addresses waiting to confirm a subscription (pending.pck: cookie -> (op, data))."""
    return sorted(plain(value[1].address, "ascii") for value in list_pickle(name, "pending.pck").values()
                  if isinstance(value, tuple) and plain(value[0], "ascii") == "S")


def held_subjects(name):
    """The subjects of the held posts (request.pck: id -> (HELDMSG, (when, sender, subject, ...)))."""
    return sorted(plain(value[1][2], "utf-8") for value in list_pickle(name, "request.pck").values()
                  if isinstance(value, tuple) and value[0] == HELDMSG)


def archive(mlist):
    # Not closed: pipermail's close() writes its state and the table of contents.
    archiver = HyperArchive(mlist)
    return dict((plain(month, "ascii"), archiver.database.numArticles(month)) for month in archiver.archives)


def main():
    dump = {}
    for name in sys.argv[2:]:
        mlist = MailList.MailList(name, lock=0)
        dump[name] = {"config": config(name), "members": members(mlist), "archive": archive(mlist),
                      "held": held_subjects(name), "pending": pending_subscriptions(name)}
    sys.stdout.write(json.dumps(dump, sort_keys=True))


main()
