#!/usr/bin/env python3
"""An inventory script with _meta.hostvars (Ansible's dynamic inventory protocol)."""
import json
import sys

inventory = {
    "web": {"hosts": ["web-2", "web-1"], "vars": {"tier": "web", "http_port": 80}},
    "db": {"hosts": ["db-1"], "vars": {"tier": "db"}, "children": []},
    "prod": {"children": ["web", "db"], "vars": {"env": "prod", "tier": "prod"}},
    "all": {"vars": {"everyone": True}},
    "_meta": {"hostvars": {
        "web-1": {"ansible_host": "192.0.2.11", "weight": 2.5},
        "db-1": {"ansible_port": 2222, "tags": ["a", "b"], "nested": {"x": None}},
    }},
}
if sys.argv[1:] == ["--list"]:
    json.dump(inventory, sys.stdout)
elif sys.argv[1:2] == ["--host"]:
    json.dump({}, sys.stdout)
else:
    sys.exit("usage: inventory.py --list | --host NAME")
