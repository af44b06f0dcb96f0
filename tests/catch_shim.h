// One include for Catch2 v2 (Debian: catch2/catch.hpp) and v3 (Ubuntu 24.04: catch_all.hpp).
//
// libtorch's logging header (c10/util/Logging.h, via glog on Debian) defines its own CHECK()
// macro, which aborts instead of recording a test assertion. It is included here first and its
// CHECK removed, so Catch's CHECK is the one every test sees whatever the include order (the
// header's include guard keeps later torch includes from redefining it).
// Test binaries of the wings without libtorch define INDEXCACHE_WITHOUT_TORCH and skip it.
#pragma once
#if !defined(INDEXCACHE_WITHOUT_TORCH) && __has_include(<c10/util/Logging.h>)
#include <c10/util/Logging.h>
#endif
#undef CHECK
#if __has_include(<catch2/catch_all.hpp>)
#include <catch2/catch_all.hpp>
#define INDEXCACHE_CATCH_V3 1
#else
#include <catch2/catch.hpp>
#endif
