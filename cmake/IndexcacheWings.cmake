# The library, one static target per wing: lib/<wing>/ (docs/ARCHITECTURE.md). Included by the
# top-level CMakeLists.txt, so lib/ itself holds only the wing folders. A wing's folder is its public
# include directory, and a wing sees only the headers of the wings it links: a file that
# includes a header from a wing above its own does not compile. Files ending in _cuda.cpp
# dispatch to the kernels and are built only against a CUDA-enabled libtorch.
#
#   tools -> app -> {search, overlap} -> model -> {checkpoint, kernels}
#   data -> tokenizer;  report -> plan;  every wing -> base
#   base, tokenizer, data, plan and report need no libtorch.

# indexcache_wing(NAME DEPENDENCY...): lib/NAME/*.cpp as indexcache_NAME, linked PUBLIC to the
# given targets.
function(indexcache_wing name)
  file(GLOB sources CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/lib/${name}/*.cpp)
  file(GLOB cuda_sources CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/lib/${name}/*_cuda.cpp)
  if(cuda_sources)
    list(REMOVE_ITEM sources ${cuda_sources})
  endif()
  add_library(indexcache_${name} STATIC ${sources})
  target_include_directories(indexcache_${name} PUBLIC ${PROJECT_SOURCE_DIR}/lib/${name})
  target_compile_options(indexcache_${name} PRIVATE -Wall -Wextra)
  target_link_libraries(indexcache_${name} PUBLIC ${ARGN})
  if(cuda_sources AND INDEXCACHE_TORCH_HAS_CUDA AND TARGET indexcache_kernels)
    target_sources(indexcache_${name} PRIVATE ${cuda_sources})
    target_compile_definitions(indexcache_${name} PRIVATE INDEXCACHE_CUDA=1)
    target_link_libraries(indexcache_${name} PUBLIC indexcache_kernels CUDA::cudart)
  endif()
endfunction()

# --- Without libtorch -------------------------------------------------------------------------
indexcache_wing(base Threads::Threads)
target_compile_definitions(indexcache_base PUBLIC
  INDEXCACHE_VERSION="${PROJECT_VERSION}"
  INDEXCACHE_SOURCE_DIR="${PROJECT_SOURCE_DIR}")

indexcache_wing(tokenizer indexcache_base nlohmann_json::nlohmann_json ${PCRE2_LIBRARY})
target_include_directories(indexcache_tokenizer PRIVATE ${PCRE2_INCLUDE_DIR})
target_compile_definitions(indexcache_tokenizer PRIVATE PCRE2_CODE_UNIT_WIDTH=8 $<$<BOOL:${PCRE2_ROOT}>:PCRE2_STATIC>)

indexcache_wing(data indexcache_tokenizer indexcache_base ${INDEXCACHE_YAML_TARGET} nlohmann_json::nlohmann_json)
indexcache_wing(plan indexcache_base ${INDEXCACHE_YAML_TARGET} nlohmann_json::nlohmann_json)
indexcache_wing(report indexcache_plan indexcache_base nlohmann_json::nlohmann_json)

if(NOT INDEXCACHE_WITH_TORCH)
  return()
endif()

# --- With libtorch ----------------------------------------------------------------------------
indexcache_wing(checkpoint indexcache_base ${TORCH_LIBRARIES} nlohmann_json::nlohmann_json)
indexcache_wing(model indexcache_checkpoint indexcache_base ${TORCH_LIBRARIES})
if(INDEXCACHE_TORCH_HAS_CUDA AND TARGET indexcache_kernels)
  # Callers of the model (the device checks in app, the benches) ask whether CUDA is built in.
  target_compile_definitions(indexcache_model PUBLIC INDEXCACHE_CUDA=1)
endif()
indexcache_wing(search indexcache_model indexcache_base nlohmann_json::nlohmann_json)
# The distributed search (lib/search/distributed.h) uses libtorch's c10d: its gloo backend needs
# gloo's headers (the Python package ships them, Debian has libgloo-dev), NCCL needs a CUDA
# libtorch and nccl.h (the Python package's nvidia-nccl wheel, or the system's). The symbols are
# in libtorch_cpu / libtorch_cuda, which the model wing already links.
find_path(INDEXCACHE_GLOO_INCLUDE_DIR gloo/config.h HINTS ${TORCH_INCLUDE_DIRS})
if(INDEXCACHE_GLOO_INCLUDE_DIR)
  target_include_directories(indexcache_search PRIVATE ${INDEXCACHE_GLOO_INCLUDE_DIR})
  target_compile_definitions(indexcache_search PRIVATE USE_C10D_GLOO INDEXCACHE_C10D_GLOO=1)
endif()
if(INDEXCACHE_TORCH_HAS_CUDA)
  find_path(INDEXCACHE_NCCL_INCLUDE_DIR nccl.h
    HINTS ${TORCH_INCLUDE_DIRS} ${TORCH_INSTALL_PREFIX}/../nvidia/nccl/include ${CUDAToolkit_INCLUDE_DIRS})
  if(INDEXCACHE_NCCL_INCLUDE_DIR)
    target_include_directories(indexcache_search PRIVATE ${INDEXCACHE_NCCL_INCLUDE_DIR})
    target_compile_definitions(indexcache_search PRIVATE USE_C10D_NCCL INDEXCACHE_C10D_NCCL=1)
  endif()
endif()
message(STATUS "indexcache: distributed search: gloo ${INDEXCACHE_GLOO_INCLUDE_DIR}, nccl ${INDEXCACHE_NCCL_INCLUDE_DIR}")
indexcache_wing(overlap indexcache_model indexcache_data indexcache_report indexcache_base)
indexcache_wing(app indexcache_search indexcache_overlap indexcache_model indexcache_data indexcache_plan
                indexcache_report indexcache_checkpoint indexcache_tokenizer indexcache_base CLI11::CLI11)
