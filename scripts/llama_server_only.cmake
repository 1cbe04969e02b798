# Run by CMake right after llama.cpp's own project() call (scripts/build_llama_wheel.sh passes it as
# CMAKE_PROJECT_llama.cpp_INCLUDE). llama-cpp-python forces LLAMA_BUILD_COMMON on in the cache, yet its
# Python code loads only libllama and libggml*: llama-common (51 files, with nlohmann/json and
# cpp-httplib) is built and shipped for nothing. A normal variable in llama.cpp's directory scope
# shadows that cache entry (policies CMP0077 and CMP0126 are NEW there), so neither is built.
set(LLAMA_BUILD_COMMON OFF)

# A native build on a CPU with AMX (Intel Sapphire Rapids and later) compiles ggml's AMX kernels, and
# the server then dies of SIGSEGV in ggml_backend_amx_mul_mat on its first decode of Gemma's Q4_K_M
# weights (ggml-org/llama.cpp#20824, closed unfixed). GCC and Clang let an explicit -mno-* win over the
# -march=native that ggml adds later, so the AVX-512/VNNI kernels stay and the AMX ones are left out.
# A compiler too old to know the flags (GCC < 11, Clang < 11) cannot build the AMX kernels either.
if (CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$" AND CMAKE_C_COMPILER_ID MATCHES "GNU|Clang")
    include(CheckCCompilerFlag)
    check_c_compiler_flag("-mno-amx-tile -mno-amx-int8 -mno-amx-bf16" GIFCAT_CC_KNOWS_NO_AMX)
    if (GIFCAT_CC_KNOWS_NO_AMX)
        string(APPEND CMAKE_C_FLAGS " -mno-amx-tile -mno-amx-int8 -mno-amx-bf16")
        string(APPEND CMAKE_CXX_FLAGS " -mno-amx-tile -mno-amx-int8 -mno-amx-bf16")
    endif()
endif()

# libllama (tokenizer, model loading, graph building, sampling) is two thirds of the compile at -O3,
# yet the arithmetic runs in ggml-cpu, which keeps -O3. -O1 for libllama alone cut the build from
# 3 min 41 s to 2 min 40 s on 2 cores, for the same answers and calls about 3% slower (README "First
# run"). Deferred to the end of llama.cpp's directory, where the target exists (CMake >= 3.19; the
# package needs 3.21); target options come after CMAKE_<LANG>_FLAGS_RELEASE, and the last -O wins.
function(gifcat_quick_libllama)
    if (TARGET llama AND CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
        target_compile_options(llama PRIVATE -O1)
    endif()
endfunction()
cmake_language(DEFER CALL gifcat_quick_libllama)
