"""jaxcnn.runtime: `import jaxcnn` changes no environment variable; the XLA:CPU
flags come from an explicit `jaxcnn.runtime.configure()` (which the scripts,
the engine and the tests call). Fresh processes: XLA reads XLA_FLAGS once."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
YNN = "--xla_cpu_experimental_ynn_fusion_type="

# ResNet-20's first stage (32x32x16, 3x3) at batch 32: with YNNPACK on, XLA compiles its convolutions
# and their gradients to YNNPACK fusions (checked in the opt-out test); prints the status, XLA_FLAGS and
# whether any YNNPACK fusion was compiled.
PROBE = """
import os, sys
{before}
import jaxcnn.runtime
jaxcnn.runtime.configure()
import jaxcnn, jax, jax.numpy as jnp
x = jnp.ones((32, 32, 32, 16)); w = jnp.ones((3, 3, 16, 16))
loss = lambda x, w: jnp.sum(jax.nn.relu(jaxcnn.ops.cross_correlate(x, w, padding="SAME")) ** 2)
hlo = jax.jit(jax.grad(loss, argnums=(0, 1))).lower(x, w).compile().as_text()
print(jaxcnn.xla_cpu_status(), "|", os.environ.get("XLA_FLAGS", ""), "|", "__ynn_fusion" in hlo)
"""


def _env(extra):
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAXCNN_XLA_CPU_FLAGS")}
    env.update(PYTHONPATH=ROOT, JAX_PLATFORMS="cpu", **extra)
    return env


def _probe(env_extra, before=""):
    # The probe is about XLA's own convolution kernels: jaxcnn's native CPU path off.
    r = subprocess.run([sys.executable, "-c", PROBE.format(before=before)], capture_output=True, text=True,
                       env=_env({"JAXCNN_NATIVE_CONV": "0", **env_extra}), timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    status, flags, ynn = r.stdout.strip().splitlines()[-1].split(" | ")
    return status, flags, ynn == "True"


def test_import_changes_no_environment_variable():
    code = ("import os, jax; before = dict(os.environ)\n"
            "import jaxcnn, jaxcnn.train, jaxcnn.finetune, jaxcnn.ablation, jaxcnn.pretrained, jaxcnn.data\n"
            "changed = {k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k)}\n"
            "print(sorted(changed), jaxcnn.xla_cpu_status())")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                       env=_env({"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}))
    assert r.returncode == 0, r.stderr[-2000:]
    changed, status = r.stdout.strip().split("] ", 1)
    assert changed == "[" and status.startswith("not attempted")


def test_configure_appends_the_flag_and_no_ynnpack_fusion_is_compiled():
    status, flags, ynn = _probe({"XLA_FLAGS": "--xla_force_host_platform_device_count=2"})
    assert status == "applied"
    assert flags.split() == ["--xla_force_host_platform_device_count=2", YNN]
    assert not ynn


def test_the_users_own_setting_is_kept():
    status, flags, _ = _probe({"XLA_FLAGS": YNN + "individual_dot"})
    assert status == "kept the user's XLA_FLAGS"
    assert flags == YNN + "individual_dot"


def test_opt_out_and_too_late_leave_xla_flags_alone():
    status, flags, ynn = _probe({"JAXCNN_XLA_CPU_FLAGS": "0"})
    assert (status, flags) == ("disabled by JAXCNN_XLA_CPU_FLAGS=0", "")
    assert ynn, "this jaxlib no longer uses YNNPACK for convolutions: revisit jaxcnn.runtime.CPU_XLA_FLAGS"
    status, flags, _ = _probe({}, before="import jax; jax.numpy.ones(1)")
    assert (status, flags) == ("too late: JAX had already started a backend", "")


def test_the_main_script_applies_the_flags(tmp_path):
    r = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "train.py"), "--config",
                        os.path.join(ROOT, "experiments", "configs", "default.py"), "--workdir", str(tmp_path),
                        "--config.dataset=synthetic", "--config.synthetic_shape=(12,12,1)",
                        "--config.model.name=fashion_cnn_tiny", "--config.num_steps=1", "--config.batch_size=8",
                        "--config.eval_batch_size=64", "--config.synthetic_size=64", "--config.parallel=none",
                        "--config.progress=False"], capture_output=True, text=True, timeout=300, env=_env({}))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "XLA:CPU flags of jaxcnn.runtime: applied" in r.stdout


# A 256 MiB block allocated from a thread other than the main one (as XLA allocates each execution's
# temporary buffer), touched, freed, then allocated and touched again: the minor page faults of the second
# round. With glibc's defaults the block is a fresh mmap each time (65,536 zeroed 4 KiB pages faulted in);
# after configure_malloc() it comes back from the heap already faulted in.
FAULTS = """
import ctypes, resource, threading
{before}
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
def round_():  # malloc, touch every page, free (numpy would ask for huge pages; XLA does not)
    p = libc.malloc(2**28); ctypes.memset(p, 1, 2**28); libc.free(p)
def second_round_faults():
    out = []
    def work():
        round_()
        r0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        round_()
        out.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - r0)
    t = threading.Thread(target=work); t.start(); t.join()
    return out[0]
print(second_round_faults())
"""


def _faults(env_extra, before):
    r = subprocess.run([sys.executable, "-c", FAULTS.format(before=before)], capture_output=True, text=True,
                       env=_env(env_extra), timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    return int(r.stdout.strip().splitlines()[-1])


def test_configure_malloc_lets_a_large_block_be_reused_without_page_faults():
    tuned = "import jaxcnn.runtime; print(jaxcnn.runtime.configure_malloc())"
    assert _faults({}, "") > 2**28 // 4096 // 2  # glibc's defaults: every page faulted in again
    assert _faults({}, tuned) < 2**28 // 4096 // 20
    assert _faults({"JAXCNN_MALLOC_TUNING": "0"}, tuned) > 2**28 // 4096 // 2  # the opt-out


def test_configure_malloc_status_and_refusal(monkeypatch):
    import jaxcnn.runtime

    monkeypatch.setenv("JAXCNN_MALLOC_TUNING", "0")
    assert jaxcnn.runtime.configure_malloc() == "disabled by JAXCNN_MALLOC_TUNING=0"
    assert jaxcnn.runtime.malloc_status() == "disabled by JAXCNN_MALLOC_TUNING=0"
    monkeypatch.setenv("JAXCNN_MALLOC_TUNING", "yes")
    import pytest

    with pytest.raises(ValueError, match="JAXCNN_MALLOC_TUNING='yes'"):
        jaxcnn.runtime.configure_malloc()
