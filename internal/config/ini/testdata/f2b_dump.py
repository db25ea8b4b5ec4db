# Reference dump of fail2ban's configuration reader, used by the Go tests.
# usage: f2b_dump.py BASEDIR NAME...  -> JSON object NAME -> dump on stdout
import json, sys
sys.path.insert(0, '/usr/lib/python3/dist-packages')
from fail2ban.client.configreader import ConfigReader


def dump_one(basedir, name):
    out = {}
    try:
        c = ConfigReader(basedir=basedir)
        if not c.read(name):
            out["error"] = "not read"
            return out
        cfg = c._cfg

        def dump(sec, opts):
            d = {}
            for o, raw in opts.items():
                try:
                    d[o] = {"raw": raw, "value": cfg.get(sec, o)}
                except Exception as e:
                    d[o] = {"raw": raw, "error": type(e).__name__}
            return d
        secs = {"DEFAULT": dump("DEFAULT", cfg._defaults)}
        for s, opts in cfg._sections.items():
            secs[s] = dump(s, opts)
        out["sections"] = secs
        out["order"] = list(cfg._sections.keys())
    except Exception as e:
        out["error"] = type(e).__name__ + ": " + str(e)
    return out


basedir = sys.argv[1]
json.dump({n: dump_one(basedir, n) for n in sys.argv[2:]}, sys.stdout)
