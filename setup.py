"""Build of fusedloss._C (pytorch/extension-cpp layout, torchao's CUDA gate, flash-attn's arch list).

    pip install --no-build-isolation -e .[dev]

torch is not a build requirement (it must already be installed: --no-build-isolation), so the
extension is built against the torch the tests will import.

- CppExtension always: csrc/module.cpp + csrc/**/*_cpu.cpp.
- CUDAExtension instead when torch.version.cuda is set, CUDA_HOME is found and FUSEDLOSS_NO_CUDA is not
  1: adds csrc/**/*.cu + csrc/**/*_cuda_binding.cpp and defines FUSEDLOSS_WITH_CUDA. No GPU is needed.
- FUSEDLOSS_CUDA_ARCHS: ";"-separated compute capabilities, default "80;90" (SASS for each, PTX for
  the last). DEBUG=1: -O0 -g instead of -O3.
- abi3 (py_limited_api=True): one _C.abi3.so for every CPython >= 3.10 (see PY_LIMITED_API below).
"""

import glob
import os
import platform
import sys

from setuptools import find_packages, setup

ROOT = os.path.dirname(os.path.abspath(__file__))

# torch >= 2.13 itself compiles every py_limited_api extension with -DPy_LIMITED_API=0x030A0000 (its
# minimum CPython). extension-cpp passes 0x03090000; a second, different -D would be a macro
# redefinition (an error under -Werror), so we pass the value torch uses and tag the wheel to match.
PY_LIMITED_API = "0x030A0000"
PY_LIMITED_API_TAG = "cp310"


def _sources(pattern: str) -> list[str]:
    # Relative paths: setuptools wants them relative to setup.py for editable/sdist builds.
    return sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, pattern), recursive=True))


def _cuda_archs() -> list[str]:
    archs = [a.strip() for a in os.getenv("FUSEDLOSS_CUDA_ARCHS", "80;90").replace(",", ";").split(";")]
    archs = [a.replace(".", "") for a in archs if a]
    if not archs or not all(a.isdigit() for a in archs):
        raise ValueError(f"FUSEDLOSS_CUDA_ARCHS must look like '80;90', got {os.getenv('FUSEDLOSS_CUDA_ARCHS')!r}")
    return archs


def get_extensions():
    # Imported here so that `setup.py --version`-style metadata queries work without torch.
    import torch
    from torch.utils.cpp_extension import CUDA_HOME, CppExtension, CUDAExtension

    debug = os.getenv("DEBUG", "0") == "1"
    no_cuda = os.getenv("FUSEDLOSS_NO_CUDA", "0") == "1"
    use_cuda = bool(torch.version.cuda) and CUDA_HOME is not None and not no_cuda
    is_gcc_like = sys.platform != "win32"
    libc, libc_version = platform.libc_ver()
    # glibc >= 2.35 has libmvec's log1p: the CPU kernel then vectorises through it (focal_cpu.cpp).
    use_libmvec = (
        sys.platform.startswith("linux")
        and platform.machine() in ("x86_64", "AMD64")
        and libc == "glibc"
        and tuple(int(v) for v in libc_version.split(".")[:2]) >= (2, 35)
    )

    opt = ["-O0", "-g"] if debug else ["-O3"]
    cxx = opt + [f"-DPy_LIMITED_API={PY_LIMITED_API}"]
    if is_gcc_like:
        # Warnings are errors where CI builds (CPU torch); a CUDA build happens on machines CI never
        # sees, with other compilers, where a new warning must not stop the install.
        cxx += ["-Wall"] + ([] if use_cuda else ["-Werror"])
        cxx += [
            # The CPU kernel's loop vectorises through libmvec: no errno from libm calls, no FP traps, and
            # `omp simd reduction` to allow reassociating its float sums.
            "-fno-math-errno",
            "-fno-trapping-math",  # lets it if-convert the selects of focal_math.h (no FP traps used)
            "-fopenmp-simd",
            "-DFUSEDLOSS_OPENMP_SIMD",
            "-fdiagnostics-color=always",
        ]
    # at::parallel_for is an inline `#pragma omp parallel` in ATen's headers: without -fopenmp every
    # CPU kernel silently runs on one thread. The link resolves libgomp.so.1 to the copy torch has
    # already loaded (same soname), so there is one OpenMP runtime in the process.
    use_openmp = is_gcc_like and torch.backends.openmp.is_available()
    if use_openmp:
        cxx.append("-fopenmp")
    if not use_libmvec:
        cxx.append("-DFUSEDLOSS_NO_LIBMVEC")
    libraries = ["mvec"] if use_libmvec else []

    sources = ["csrc/module.cpp"] + _sources("csrc/**/*_cpu.cpp")
    kwargs = dict(
        extra_compile_args={"cxx": cxx},
        extra_link_args=(["-O0", "-g"] if debug else []) + (["-fopenmp"] if use_openmp else []),
        libraries=libraries,
        py_limited_api=True,
    )
    if use_cuda:
        archs = _cuda_archs()
        gencode = [f"-gencode=arch=compute_{a},code=sm_{a}" for a in archs]
        gencode.append(f"-gencode=arch=compute_{archs[-1]},code=compute_{archs[-1]}")
        nvcc = (["-O0", "-g", "-lineinfo"] if debug else ["-O3", "-lineinfo"]) + [
            "-DFUSEDLOSS_WITH_CUDA",
        ] + gencode  # warnings as errors for .cu live in CMakeLists.txt, which CI runs
        kwargs["extra_compile_args"] = {"cxx": cxx + ["-DFUSEDLOSS_WITH_CUDA"], "nvcc": nvcc}
        sources += _sources("csrc/**/*.cu") + _sources("csrc/**/*_cuda_binding.cpp")
        return [CUDAExtension("fusedloss._C", sources, **kwargs)]
    return [CppExtension("fusedloss._C", sources, **kwargs)]


def _cmdclass():
    from torch.utils.cpp_extension import BuildExtension

    return {"build_ext": BuildExtension}


setup(
    name="fusedloss",
    version="0.1.0",
    description="Fused loss kernels (binary focal, pairwise, ...) for PyTorch: CPU, CUDA and Triton backends",
    packages=find_packages(include=["fusedloss", "fusedloss.*"]),
    python_requires=">=3.10",
    install_requires=["torch"],
    extras_require={
        "dev": ["pytest", "numpy==2.4.6", "pyyaml"],
        "triton": ["triton==3.9.0"],
    },
    ext_modules=get_extensions(),
    cmdclass=_cmdclass(),
    options={"bdist_wheel": {"py_limited_api": PY_LIMITED_API_TAG}},
)
