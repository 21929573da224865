"""Throughput of a served model (the OpenAI-compatible adapter, as used with vLLM, SGLang or TGI)
against the adapter's `concurrency`, on a local stand-in server whose replies take a fixed latency
(as a continuous-batching server's do while it is not saturated).

    python benchmarks/bench_served.py [--requests 128] [--latency 0.2] [--concurrency 1,2,4,8,16,32]

The server listens on 127.0.0.1 only and answers every chat completion after `--latency` seconds;
the adapter sends IDP requests (two 64x64 frames each, PNG-encoded as the adapter does).
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

from wmbench.core.types import Batch
from wmbench.models.api import OpenAIChatModel


def serve(latency: float) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            time.sleep(latency)
            data = json.dumps({"choices": [{"message": {"role": "assistant", "content": "push the cup left"},
                                            "finish_reason": "stop"}], "model": "stand-in"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=128)
    parser.add_argument("--latency", type=float, default=0.2, help="seconds per reply (default 0.2)")
    parser.add_argument("--concurrency", default="1,2,4,8,16,32")
    args = parser.parse_args()
    server = serve(args.latency)
    os.environ["WMBENCH_BENCH_KEY"] = "sk-local-stand-in"
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (64, 64, 3), dtype=np.uint8) for _ in range(args.requests * 2)]
    batch = Batch(sample_ids=[f"s{i}" for i in range(args.requests)], sources=frames[::2], targets=frames[1::2],
                  prompts=["What action was performed?"] * args.requests)
    print(f"{args.requests} IDP requests, {args.latency:.2f} s per reply, local stand-in server")
    print("| concurrency | wall (s) | requests/s | speed-up |\n|---|---|---|---|")
    base = None
    for concurrency in [int(c) for c in args.concurrency.split(",")]:
        model = OpenAIChatModel(model="stand-in", base_url=f"http://127.0.0.1:{server.server_address[1]}/v1",
                                api_key_env="WMBENCH_BENCH_KEY", concurrency=concurrency)
        clock = time.perf_counter()
        out = model.infer_action(batch)
        wall = time.perf_counter() - clock
        assert len(out) == args.requests
        base = base or args.requests / wall
        print(f"| {concurrency} | {wall:.2f} | {args.requests / wall:.1f} | {args.requests / wall / base:.1f}x |")
    server.shutdown()


if __name__ == "__main__":
    main()
