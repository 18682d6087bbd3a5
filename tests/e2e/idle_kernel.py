"""Starts a kernel on the Jupyter server at 127.0.0.1:PORT and runs CODE in it without waiting
for the cell to end (as a browser tab does before it is closed); prints the kernel id once the
kernel says it is busy. Then, as a frontend connecting does, asks it kernel_info on its control
channel: notebook 6 with ipykernel 6 then calls the kernel "idle" while the cell runs on (the
watcher must not believe it). Usage: idle_kernel.py PORT TOKEN CODE"""
import json, sys, uuid, urllib.request, websocket

port, token, code = sys.argv[1], sys.argv[2], sys.argv[3]
base = f"http://127.0.0.1:{port}"
req = urllib.request.Request(f"{base}/api/kernels", data=b"{}", method="POST",
                             headers={"Authorization": f"token {token}", "Content-Type": "application/json"})
kernel = json.load(urllib.request.urlopen(req, timeout=60))
ws = websocket.create_connection(f"ws://127.0.0.1:{port}/api/kernels/{kernel['id']}/channels?token={token}", timeout=60)
msg_id = uuid.uuid4().hex
ws.send(json.dumps({"header": {"msg_id": msg_id, "username": "berth", "session": uuid.uuid4().hex,
                               "msg_type": "execute_request", "version": "5.3"},
                    "parent_header": {}, "metadata": {}, "channel": "shell",
                    "content": {"code": code, "silent": False, "store_history": False,
                                "user_expressions": {}, "allow_stdin": False}}))
while True:
    m = json.loads(ws.recv())
    if m.get("parent_header", {}).get("msg_id") == msg_id and m["msg_type"] == "status" \
            and m["content"]["execution_state"] == "busy":
        break
info_id = uuid.uuid4().hex
ws.send(json.dumps({"header": {"msg_id": info_id, "username": "berth", "session": uuid.uuid4().hex,
                               "msg_type": "kernel_info_request", "version": "5.3"},
                    "parent_header": {}, "metadata": {}, "channel": "control", "content": {}}))
while True:
    m = json.loads(ws.recv())
    if m.get("parent_header", {}).get("msg_id") == info_id and m["msg_type"] == "status" \
            and m["content"]["execution_state"] == "idle":
        break
ws.close()  # the browser goes away; the cell keeps running
print(kernel["id"])
