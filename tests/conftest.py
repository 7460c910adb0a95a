"""Test set-up: eight simulated CPU devices, so the data-parallel paths run on
one machine, and jaxcnn's XLA:CPU flags (as every entry point applies them).
This must happen before JAX starts a backend."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TFDS_DATA_DIR", os.path.join(os.path.dirname(__file__), "..", ".tfds_test_cache"))

import jaxcnn.runtime  # noqa: E402

jaxcnn.runtime.configure()
