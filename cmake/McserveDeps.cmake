# Finds every third-party dependency once, for the whole tree.
find_package(Threads REQUIRED)
find_package(Protobuf REQUIRED)                 # FindProtobuf: protobuf::libprotobuf, protobuf::protoc
find_package(gRPC CONFIG REQUIRED)              # gRPC::grpc++, gRPC::grpc++_reflection, gRPC::grpc_cpp_plugin
find_package(absl CONFIG REQUIRED)
find_package(prometheus-cpp CONFIG REQUIRED)    # prometheus-cpp::core, prometheus-cpp::pull
find_package(nlohmann_json CONFIG REQUIRED)
# libsentencepiece (Debian's libsentencepiece-dev). Found by header and
# library rather than its pkg-config file, whose /usr prefix is wrong inside
# the offline bundle (scripts/offline/); CMAKE_PREFIX_PATH finds both there.
find_path(SENTENCEPIECE_INCLUDE_DIR sentencepiece_processor.h REQUIRED)
find_library(SENTENCEPIECE_LIBRARY sentencepiece REQUIRED)
add_library(mcserve_sentencepiece INTERFACE)
target_include_directories(mcserve_sentencepiece SYSTEM INTERFACE ${SENTENCEPIECE_INCLUDE_DIR})
target_link_libraries(mcserve_sentencepiece INTERFACE ${SENTENCEPIECE_LIBRARY})

if(MCSERVE_LIBTORCH)
  list(PREPEND CMAKE_PREFIX_PATH "${MCSERVE_LIBTORCH}" "${MCSERVE_LIBTORCH}/share/cmake")
endif()
if(MCSERVE_CUDA)
  enable_language(CUDA)
  find_package(CUDAToolkit REQUIRED)
endif()
find_package(Torch REQUIRED)
# A LibTorch built with CUDA ships c10_cuda (its current-stream API, which
# the kernel wrappers launch on). Debian's CPU LibTorch has none, and then
# makes no CUDA tensors either: the CUDA kernels still compile and link.
if(TARGET c10_cuda OR C10_CUDA_LIBRARY)
  set(MCSERVE_TORCH_CUDA ON)
else()
  set(MCSERVE_TORCH_CUDA OFF)
endif()
message(STATUS "mcserve: LibTorch ${Torch_VERSION} from ${Torch_DIR} (CUDA: ${MCSERVE_TORCH_CUDA})")

# Imported torch targets carry their flags (e.g. the C++11 ABI define); their
# headers are system headers so our warning flags do not apply to them.
add_library(mcserve_torch INTERFACE)
target_link_libraries(mcserve_torch INTERFACE ${TORCH_LIBRARIES})
target_compile_options(mcserve_torch INTERFACE ${TORCH_CXX_FLAGS})
