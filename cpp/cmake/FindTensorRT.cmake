# Finds TensorRT's headers (NvInfer.h, NvOnnxParser.h) and libraries (nvinfer, nvonnxparser).
#
# Where: the CMake or environment variable TensorRT_ROOT (then only there), else the usual places: Debian/Ubuntu
# packages (/usr/include/<arch>-linux-gnu, /usr/lib/<arch>-linux-gnu, as in NVIDIA's TensorRT containers),
# /usr/local/tensorrt, /opt/tensorrt. A tree with only the headers is reported as TensorRT_HEADERS_FOUND.
#
# Sets TensorRT_FOUND (headers and libraries), TensorRT_HEADERS_FOUND, TensorRT_VERSION (from NvInferVersion.h),
# TensorRT_INCLUDE_DIR, TensorRT_LIBRARIES, TensorRT_ROOT_USED, and the imported target TensorRT::TensorRT.

if(NOT TensorRT_ROOT AND DEFINED ENV{TensorRT_ROOT})
  set(TensorRT_ROOT "$ENV{TensorRT_ROOT}")
endif()

# Cached results belong to one root: forget them when the root changes between configures.
if(NOT "${TensorRT_ROOT}" STREQUAL "${_TensorRT_SEARCHED_ROOT}")
  unset(TensorRT_INCLUDE_DIR CACHE)
  unset(TensorRT_ONNX_INCLUDE_DIR CACHE)
  unset(TensorRT_nvinfer_LIBRARY CACHE)
  unset(TensorRT_nvonnxparser_LIBRARY CACHE)
  set(_TensorRT_SEARCHED_ROOT "${TensorRT_ROOT}" CACHE INTERNAL "")
endif()

set(_trt_arch "${CMAKE_LIBRARY_ARCHITECTURE}")
if(NOT _trt_arch)
  set(_trt_arch "${CMAKE_SYSTEM_PROCESSOR}-linux-gnu")
endif()
if(TensorRT_ROOT)
  set(_trt_where HINTS "${TensorRT_ROOT}" NO_DEFAULT_PATH)
else()
  set(_trt_where PATHS /usr /usr/local/tensorrt /opt/tensorrt /usr/local/cuda)
endif()
set(TensorRT_ROOT_USED "${TensorRT_ROOT}")

find_path(TensorRT_INCLUDE_DIR NvInfer.h ${_trt_where} PATH_SUFFIXES include "include/${_trt_arch}")
find_path(TensorRT_ONNX_INCLUDE_DIR NvOnnxParser.h ${_trt_where} PATH_SUFFIXES include "include/${_trt_arch}")
# The tensorrt wheels ship libnvinfer.so.N without the unversioned link name; accept those too.
find_library(TensorRT_nvinfer_LIBRARY NAMES nvinfer libnvinfer.so.11 libnvinfer.so.10 libnvinfer.so.8
             ${_trt_where} PATH_SUFFIXES lib lib64 "lib/${_trt_arch}")
find_library(TensorRT_nvonnxparser_LIBRARY NAMES nvonnxparser libnvonnxparser.so.11 libnvonnxparser.so.10
             libnvonnxparser.so.8 ${_trt_where} PATH_SUFFIXES lib lib64 "lib/${_trt_arch}")

# NV_TENSORRT_MAJOR is a number in 8.x and names another macro (TRT_MAJOR_ENTERPRISE) in later 10.x releases.
function(_trt_version_part header name out)
  file(STRINGS "${header}" _line REGEX "^#define[ \t]+${name}[ \t]")
  string(REGEX REPLACE "^#define[ \t]+${name}[ \t]+([A-Za-z0-9_]+).*$" "\\1" _value "${_line}")
  if(_value MATCHES "^[0-9]+$" OR _value STREQUAL "")
    set(${out} "${_value}" PARENT_SCOPE)
  else()
    _trt_version_part("${header}" "${_value}" _resolved)
    set(${out} "${_resolved}" PARENT_SCOPE)
  endif()
endfunction()

set(TensorRT_VERSION "")
if(TensorRT_INCLUDE_DIR AND EXISTS "${TensorRT_INCLUDE_DIR}/NvInferVersion.h")
  foreach(_part MAJOR MINOR PATCH)
    _trt_version_part("${TensorRT_INCLUDE_DIR}/NvInferVersion.h" "NV_TENSORRT_${_part}" TensorRT_VERSION_${_part})
  endforeach()
  set(TensorRT_VERSION "${TensorRT_VERSION_MAJOR}.${TensorRT_VERSION_MINOR}.${TensorRT_VERSION_PATCH}")
endif()

set(TensorRT_HEADERS_FOUND FALSE)
if(TensorRT_INCLUDE_DIR AND TensorRT_ONNX_INCLUDE_DIR AND TensorRT_VERSION MATCHES "^[0-9]+\\.[0-9]+\\.[0-9]+$")
  set(TensorRT_HEADERS_FOUND TRUE)
endif()

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(TensorRT
  REQUIRED_VARS TensorRT_INCLUDE_DIR TensorRT_ONNX_INCLUDE_DIR TensorRT_nvinfer_LIBRARY TensorRT_nvonnxparser_LIBRARY
  VERSION_VAR TensorRT_VERSION
  NAME_MISMATCHED)

if(TensorRT_HEADERS_FOUND AND NOT TARGET TensorRT::Headers)
  add_library(TensorRT::Headers INTERFACE IMPORTED)
  # SYSTEM: TensorRT's own deprecation warnings are not ours to fix.
  set_target_properties(TensorRT::Headers PROPERTIES
    INTERFACE_SYSTEM_INCLUDE_DIRECTORIES "${TensorRT_INCLUDE_DIR};${TensorRT_ONNX_INCLUDE_DIR}"
    INTERFACE_INCLUDE_DIRECTORIES "${TensorRT_INCLUDE_DIR};${TensorRT_ONNX_INCLUDE_DIR}")
endif()
if(TensorRT_FOUND AND NOT TARGET TensorRT::TensorRT)
  set(TensorRT_LIBRARIES "${TensorRT_nvinfer_LIBRARY};${TensorRT_nvonnxparser_LIBRARY}")
  add_library(TensorRT::TensorRT INTERFACE IMPORTED)
  set_target_properties(TensorRT::TensorRT PROPERTIES INTERFACE_LINK_LIBRARIES "TensorRT::Headers;${TensorRT_LIBRARIES}")
endif()
mark_as_advanced(TensorRT_INCLUDE_DIR TensorRT_ONNX_INCLUDE_DIR TensorRT_nvinfer_LIBRARY TensorRT_nvonnxparser_LIBRARY)
