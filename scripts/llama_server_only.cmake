# Run by CMake right after llama.cpp's own project() call (scripts/build_llama_wheel.sh passes it as
# CMAKE_PROJECT_llama.cpp_INCLUDE). llama-cpp-python forces LLAMA_BUILD_COMMON on in the cache, yet its
# Python code loads only libllama and libggml*: llama-common (51 files, with nlohmann/json and
# cpp-httplib) is built and shipped for nothing. A normal variable in llama.cpp's directory scope
# shadows that cache entry (policies CMP0077 and CMP0126 are NEW there), so neither is built.
set(LLAMA_BUILD_COMMON OFF)
