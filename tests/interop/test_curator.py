"""Apache Curator 5 (Debian's libcurator-*-java) against the server under test: container
parents, InterProcessMutex, LeaderLatch, DistributedAtomicLong, CuratorCache (persistent
recursive watches) and ephemerals, through curator/CuratorCheck.java, compiled here."""

from __future__ import annotations

import os
import subprocess
import tempfile

import pytest

JARS = ["curator-client", "curator-framework", "curator-recipes", "zookeeper", "zookeeper-jute",
        "guava", "slf4j-api", "slf4j-nop"]
CLASSPATH = [f"/usr/share/java/{name}.jar" for name in JARS]
SOURCE = os.path.join(os.path.dirname(__file__), "curator", "CuratorCheck.java")

pytestmark = pytest.mark.skipif(
    not all(os.path.exists(jar) for jar in CLASSPATH),
    reason="Debian's libcurator-recipes-java is missing (tests/run-all.sh installs it)",
)


def test_curator_recipes_work(server):
    with tempfile.TemporaryDirectory() as build:
        subprocess.run(["javac", "-cp", ":".join(CLASSPATH), "-d", build, SOURCE], check=True, timeout=120)
        proc = subprocess.run(
            ["java", "-cp", ":".join([build] + CLASSPATH), "CuratorCheck", server.hosts],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120,
        )
    assert proc.returncode == 0 and "ALL OK" in proc.stdout, proc.stdout
