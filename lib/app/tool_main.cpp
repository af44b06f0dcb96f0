#include "tool_main.h"

#include <c10/util/Exception.h>

#include <malloc.h>

#include <csignal>
#include <cstdio>
#include <exception>
#include <new>

#include "error.h"

namespace indexcache {

std::string first_line(const std::string& text) {
  std::size_t end = text.find('\n');
  return end == std::string::npos ? text : text.substr(0, end);
}

namespace {

bool is_out_of_memory(const std::string& message) {
  return message.find("out of memory") != std::string::npos ||
         message.find("CUDA error: out of memory") != std::string::npos ||
         message.find("DefaultCPUAllocator: can't allocate memory") != std::string::npos;
}

int report_out_of_memory(const std::string& tool, const std::string& message) {
  std::fprintf(stderr,
               "error: out of memory: %s\n"
               "%s: reduce --seq-len or --num-samples, use --offload, or spread layers over more --devices\n",
               first_line(message).c_str(), tool.c_str());
  return kExitBadInput;
}

}  // namespace

int run_tool(const std::string& tool_name, const std::function<int()>& body) {
  // The forward allocates and frees large temporaries (chunks of up to ~256 MB) many times per
  // layer. glibc serves allocations above its mmap threshold with fresh mappings, so every
  // chunk paid page faults and zeroing (a third of CPU time in profiles); keep them in the heap.
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  // With RLIMIT_FSIZE exceeded, write() then fails with EFBIG and we report it, instead of the
  // process dying from SIGXFSZ with a half-written temporary file.
  std::signal(SIGXFSZ, SIG_IGN);
  try {
    return body();
  } catch (const InputError& error) {
    std::fprintf(stderr, "error: %s\n", first_line(error.what()).c_str());
    return kExitBadInput;
  } catch (const std::bad_alloc&) {
    return report_out_of_memory(tool_name, "host memory allocation failed");
  } catch (const c10::Error& error) {
    std::string message = error.what_without_backtrace();
    if (is_out_of_memory(message)) return report_out_of_memory(tool_name, message);
    std::fprintf(stderr, "%s: internal error: %s\n", tool_name.c_str(), first_line(message).c_str());
    return 1;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "%s: internal error: %s\n", tool_name.c_str(), first_line(error.what()).c_str());
    return 1;
  }
}

}  // namespace indexcache
