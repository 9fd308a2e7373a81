{
  "targets": [
    {
      "target_name": "qlr_blas",
      "sources": ["qlr_blas.c"],
      "cflags": ["-O3", "-Wall", "-Wextra"],
      "include_dirs": ["/usr/include/openblas"],
      "libraries": ["-lopenblas", "-lm"],
      "conditions": [["OS=='linux' and target_arch=='x64'", { "libraries": ["-Wl,--as-needed", "-lmvec"] }]]
    }
  ]
}
