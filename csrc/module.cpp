// The `fusedloss._C` extension module. It defines nothing: importing it loads the shared library,
// whose static initializers (TORCH_LIBRARY_IMPL in csrc/**) register the CPU and CUDA kernels
// against the schemas that fusedloss/ops/_library.py defines. Limited API only, so one abi3 build
// serves every CPython >= the Py_LIMITED_API version; no pybind (pytorch/extension-cpp pattern).
#include <Python.h>

extern "C" {
PyMODINIT_FUNC PyInit__C(void) {
  static struct PyModuleDef module_def = {
      PyModuleDef_HEAD_INIT,
      "_C",     // name
      nullptr,  // doc
      -1,       // size of per-interpreter state; -1: global state only (there is none)
      nullptr,  // methods
  };
  return PyModule_Create(&module_def);
}
}
