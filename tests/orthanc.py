"""Real Orthanc processes for the tests (Debian's ``orthanc`` and ``orthanc-dicomweb``).

Each is started with its own configuration, free high ports and a storage folder in a
temporary directory, so a Debian-started Orthanc service (4242/8042) never interferes."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import requests

DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Orthanc:
    aet: str
    http_port: int
    dicom_port: int
    process: subprocess.Popen
    folder: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb(self) -> str:
        return f"{self.url}/dicom-web"

    def get(self, path: str):
        response = requests.get(self.url + path, timeout=30)
        response.raise_for_status()
        return response.json()

    def post(self, path: str, body) -> dict:
        data = body if isinstance(body, bytes) else json.dumps(body)
        response = requests.post(self.url + path, data=data, timeout=60)
        response.raise_for_status()
        return response.json() if response.content else {}

    def upload(self, path: Path) -> str:
        """Store a DICOM file; returns Orthanc's instance id."""
        return self.post("/instances", path.read_bytes())["ID"]

    def add_modality(self, name: str, aet: str, port: int) -> None:
        response = requests.put(f"{self.url}/modalities/{name}", timeout=30,
                                data=json.dumps({"AET": aet, "Host": "127.0.0.1",
                                                 "Port": port}))
        response.raise_for_status()

    def clear(self) -> None:
        for study in self.get("/studies"):
            requests.delete(f"{self.url}/studies/{study}", timeout=30).raise_for_status()

    def study_uids(self) -> set[str]:
        return {self.get(f"/studies/{s}")["MainDicomTags"]["StudyInstanceUID"]
                for s in self.get("/studies")}

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


def orthanc_start(folder: Path, aet: str) -> Orthanc:
    binary = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
    if not Path(binary).exists() or not DICOMWEB_PLUGIN.exists():
        raise RuntimeError("Orthanc is not installed: apt-get install orthanc "
                           "orthanc-dicomweb (.ci/run does)")
    folder.mkdir(parents=True, exist_ok=True)
    http_port, dicom_port = free_port(), free_port()
    config = {
        "Name": aet, "DicomAet": aet, "HttpPort": http_port, "DicomPort": dicom_port,
        "StorageDirectory": str(folder / "storage"), "IndexDirectory": str(folder / "index"),
        "RemoteAccessAllowed": False, "AuthenticationEnabled": False,
        "DicomCheckCalledAet": False, "UnknownSopClassAccepted": True,
        "Plugins": [str(DICOMWEB_PLUGIN)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "StudiesMetadata": "Full"},
        "DicomModalities": {}, "StableAge": 1,
    }
    (folder / "orthanc.json").write_text(json.dumps(config))
    log = open(folder / "orthanc.log", "wb")  # noqa: SIM115 - kept open for the process
    process = subprocess.Popen([binary, str(folder / "orthanc.json")], stdout=log,
                               stderr=subprocess.STDOUT)
    orthanc = Orthanc(aet=aet, http_port=http_port, dicom_port=dicom_port, process=process,
                      folder=folder)
    for _ in range(300):
        if process.poll() is not None:
            raise RuntimeError(f"Orthanc exited: {(folder / 'orthanc.log').read_text()[-2000:]}")
        try:
            requests.get(orthanc.url + "/system", timeout=1).raise_for_status()
            return orthanc
        except requests.RequestException:
            time.sleep(0.1)
    orthanc.stop()
    raise RuntimeError("Orthanc did not answer within 30 seconds")
