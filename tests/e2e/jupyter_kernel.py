"""Runs `1+1` in a new kernel of the Jupyter server at 127.0.0.1:PORT (REST + websocket, the
way a browser tab does) and asserts the answer is 2. Usage: jupyter_kernel.py PORT TOKEN LABEL"""
import json, sys, uuid, urllib.request, websocket

port, token, label = sys.argv[1], sys.argv[2], sys.argv[3]
base = f"http://127.0.0.1:{port}"
req = urllib.request.Request(f"{base}/api/kernels", data=b"{}", method="POST",
                             headers={"Authorization": f"token {token}", "Content-Type": "application/json"})
kernel = json.load(urllib.request.urlopen(req, timeout=30))
ws = websocket.create_connection(f"ws://127.0.0.1:{port}/api/kernels/{kernel['id']}/channels?token={token}", timeout=30)
msg_id = uuid.uuid4().hex
ws.send(json.dumps({"header": {"msg_id": msg_id, "username": "berth", "session": uuid.uuid4().hex,
                               "msg_type": "execute_request", "version": "5.3"},
                    "parent_header": {}, "metadata": {}, "channel": "shell",
                    "content": {"code": "1+1", "silent": False, "store_history": False,
                                "user_expressions": {}, "allow_stdin": False}}))
while True:
    m = json.loads(ws.recv())
    if m.get("parent_header", {}).get("msg_id") == msg_id and m["msg_type"] == "execute_result":
        assert m["content"]["data"]["text/plain"] == "2", m
        print(f"kernel {label} says 1+1 =", m["content"]["data"]["text/plain"])
        break
ws.close()
urllib.request.urlopen(urllib.request.Request(f"{base}/api/kernels/{kernel['id']}", method="DELETE",
                       headers={"Authorization": f"token {token}"}), timeout=30)
