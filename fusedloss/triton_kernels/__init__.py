"""Triton kernels of fusedloss (import as ``fusedloss.triton_kernels``, never top-level).

Every module here exposes ``aot_specializations()``, the list of signatures that
``tests/test_triton_aot.py`` compiles ahead of time for sm_80 and sm_90.
"""
