#!/usr/bin/env python3
"""Interop check: drive a crust exec URL over WebSocket with the Python `websockets`
library (Debian package python3-websockets), independently of crust's own client.

Usage: ws_exec.py URL PROTOCOL [STDIN_TEXT]
Speaks the Kubernetes channel protocol: binary frames prefixed by the channel byte
(0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize); on v5.channel.k8s.io the client
signals stdin EOF with [255, 0]. Prints one JSON object: the negotiated protocol,
stdout, stderr and the status from the error channel.
"""
import asyncio
import json
import sys

import websockets


async def main(url, protocol, stdin_text):
    ws_url = "ws" + url[len("http"):] if url.startswith("http") else url
    out = {"protocol": None, "stdout": "", "stderr": "", "error": ""}
    async with websockets.connect(ws_url, subprotocols=[protocol], max_size=None) as ws:
        out["protocol"] = ws.subprotocol
        if stdin_text is not None:
            await ws.send(bytes([0]) + stdin_text.encode())
            if protocol.startswith("v5."):
                await ws.send(bytes([255, 0]))
        try:
            async for msg in ws:
                if isinstance(msg, str):
                    msg = msg.encode()
                if not msg:
                    continue
                ch, data = msg[0], msg[1:].decode(errors="replace")
                if ch == 1:
                    out["stdout"] += data
                elif ch == 2:
                    out["stderr"] += data
                elif ch == 3:
                    out["error"] += data
        except websockets.exceptions.ConnectionClosed:
            pass
    out["status"] = json.loads(out["error"]) if out["error"] else None
    print(json.dumps(out))


if __name__ == "__main__":
    text = sys.argv[3] if len(sys.argv) > 3 else None
    asyncio.run(asyncio.wait_for(main(sys.argv[1], sys.argv[2], text), 60))
