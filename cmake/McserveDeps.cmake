# Finds every third-party dependency once, for the whole tree.
find_package(Threads REQUIRED)
find_package(Protobuf REQUIRED)                 # FindProtobuf: protobuf::libprotobuf, protobuf::protoc
find_package(gRPC CONFIG REQUIRED)              # gRPC::grpc++, gRPC::grpc++_reflection, gRPC::grpc_cpp_plugin
find_package(absl CONFIG REQUIRED)
find_package(prometheus-cpp CONFIG REQUIRED)    # prometheus-cpp::core, prometheus-cpp::pull
find_package(nlohmann_json CONFIG REQUIRED)

if(MCSERVE_LIBTORCH)
  list(PREPEND CMAKE_PREFIX_PATH "${MCSERVE_LIBTORCH}" "${MCSERVE_LIBTORCH}/share/cmake")
endif()
if(MCSERVE_CUDA)
  enable_language(CUDA)
  find_package(CUDAToolkit REQUIRED)
endif()
find_package(Torch REQUIRED)
message(STATUS "mcserve: LibTorch ${Torch_VERSION} from ${Torch_DIR}")

# Imported torch targets carry their flags (e.g. the C++11 ABI define); their
# headers are system headers so our warning flags do not apply to them.
add_library(mcserve_torch INTERFACE)
target_link_libraries(mcserve_torch INTERFACE ${TORCH_LIBRARIES})
target_compile_options(mcserve_torch INTERFACE ${TORCH_CXX_FLAGS})
