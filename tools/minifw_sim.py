"""How tools/min-device.py and tools/step-costs.py run minifw on the
simulated driver from a build directory: the environment (simulator,
codec module, preloads) and the executable."""
import os


def sim_env(build, neuzip, env_extra=None):
    """os.environ plus the simulator; with `neuzip`, libneuzip.so preloaded and `env_extra` applied."""
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = os.path.join(build, "tests", "sim")
    env["NEUZIP_SIM_MODULE"] = os.path.join(build, "kernels", "sim", "libnzsim_codec.so")
    preload = [os.path.join(build, "tests", "runtime", "libnzrt_peak_report.so")]  # prints the simulator's peak
    if neuzip:
        preload.insert(0, os.path.join(build, "interpose", "libneuzip.so"))
        env.update(env_extra or {})
    env["LD_PRELOAD"] = " ".join(preload)
    return env


def minifw(build):
    return os.path.join(build, "tests", "apps", "minifw")
