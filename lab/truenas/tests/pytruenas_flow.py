"""A third-party TrueNAS client drives the emulator: pytruenas (PyPI 0.7.1, MIT) logs in with
the API key over wss:// and runs the storage flow kiln prepares for democratic-csi —
dataset -> zvol -> portal -> initiator group -> extent -> target -> target-extent -> NFS
share -> service start (a job, awaited through core.get_jobs) — then checks what a
malformed call and a missing object return. The same script runs against a real TrueNAS.

Usage: python3 pytruenas_flow.py CREDENTIALS_JSON   (from `kiln-lab serve-truenas`)
"""

import json
import sys
import warnings
from urllib.parse import urlsplit

warnings.filterwarnings("ignore")

from pytruenas import TrueNASClient, ValidationErrors, ClientException  # noqa: E402

creds = json.load(open(sys.argv[1]))
endpoint = urlsplit(creds["endpoint"])
# The fingerprint is not checked here: pytruenas offers verify on/off, not pinning.
client = TrueNASClient(f"wss://{endpoint.hostname}:{endpoint.port}", credentials=creds["api_key"], verify=False)
api = client.api

assert api.core.ping() == "pong"
assert api.system.version_short() == "25.10.5", api.system.version_short()
basename = getattr(api.iscsi, "global").config()["basename"]  # `global` is a Python keyword

api.pool.dataset.create({"name": "tank/k8s/px/nfs", "type": "FILESYSTEM", "create_ancestors": True,
                         "user_properties": [{"key": "kiln:cluster", "value": "px"}]})
zvol = api.pool.dataset.create({"name": "tank/k8s/px/iscsi/pvc-1", "type": "VOLUME", "volsize": 1 << 30,
                                "volblocksize": "16K", "sparse": True, "create_ancestors": True})
assert zvol["type"] == "VOLUME" and zvol["volsize"]["parsed"] == 1 << 30, zvol
parents = api.pool.dataset.query([["id", "in", ["tank/k8s/px/nfs", "tank/k8s/px/iscsi"]]],
                                 {"extra": {"retrieve_children": False, "properties": []}})
assert sorted(d["id"] for d in parents) == ["tank/k8s/px/iscsi", "tank/k8s/px/nfs"], parents

portal = api.iscsi.portal.create({"listen": [{"ip": "0.0.0.0"}], "comment": "kiln:px"})
group = api.iscsi.initiator.create({"initiators": ["iqn.2005-03.org.open-iscsi:px-n1"], "comment": "kiln:px"})
extent = api.iscsi.extent.create({"name": "pvc-1", "type": "DISK", "disk": "zvol/tank/k8s/px/iscsi/pvc-1",
                                  "blocksize": 512, "rpm": "SSD"})
target = api.iscsi.target.create({"name": "pvc-1", "alias": None, "mode": "ISCSI",
                                  "groups": [{"portal": portal["id"], "initiator": group["id"],
                                              "authmethod": "NONE", "auth": None}]})
mapping = api.iscsi.targetextent.create({"target": target["id"], "extent": extent["id"], "lunid": 0})
assert mapping["lunid"] == 0, mapping
share = api.sharing.nfs.create({"path": "/mnt/tank/k8s/px/nfs", "networks": ["10.213.7.0/24"],
                                "maproot_user": "root", "maproot_group": "root", "comment": "kiln:px"})
assert share["networks"] == ["10.213.7.0/24"], share

assert api.service.update("iscsitarget", {"enable": True}) == 7  # its id on 25.10
job = api.service.control("START", "iscsitarget", {})
assert isinstance(job, int), job
assert client.wait(job, timeout=30) is True
job = api.service.control("START", "nfs", {})
assert client.wait(job, timeout=30) is True
running = {s["service"]: s["state"] for s in api.service.query([["service", "in", ["iscsitarget", "nfs"]]])}
assert running == {"iscsitarget": "RUNNING", "nfs": "RUNNING"}, running

# Errors come back as pytruenas's own exception types, with TrueNAS's attribute names.
try:
    api.iscsi.targetextent.create({"target": str(target["id"]), "extent": extent["id"]})
    raise AssertionError("a string target id was accepted")
except ValidationErrors as e:
    text = str(e)
    assert "iscsi_target_to_extent_create.target" in text and "valid integer" in text, text
try:
    api.iscsi.target.get_instance(999)
    raise AssertionError("a missing target was found")
except (ValidationErrors, ClientException) as e:
    assert "does not exist" in str(e), str(e)

print("PYTRUENAS-OK", f"{basename}:{target['name']}", "lun", mapping["lunid"], "share", share["id"])
