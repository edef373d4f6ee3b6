#include "sim_fault.h"

#include <setjmp.h>
#include <signal.h>

#include <mutex>

#include "sim_va.h"

namespace nzsim {
namespace {

struct GuardFrame {
  sigjmp_buf env;
  volatile uintptr_t fault_address = 0;
  bool any_address = false;
};

thread_local GuardFrame* tl_frame = nullptr;
struct sigaction g_prev_segv;
struct sigaction g_prev_bus;

void chain(int sig, siginfo_t* info, void* uctx) {
  const struct sigaction& prev = sig == SIGBUS ? g_prev_bus : g_prev_segv;
  if (prev.sa_flags & SA_SIGINFO) {
    if (prev.sa_sigaction) {
      prev.sa_sigaction(sig, info, uctx);
      return;
    }
  } else if (prev.sa_handler != SIG_DFL && prev.sa_handler != SIG_IGN) {
    prev.sa_handler(sig);
    return;
  }
  // Default action: restore it and return, so the faulting instruction runs
  // again and the process dies with the usual signal (and core).
  signal(sig, SIG_DFL);
}

void on_fault(int sig, siginfo_t* info, void* uctx) {
  GuardFrame* frame = tl_frame;
  auto addr = reinterpret_cast<uintptr_t>(info->si_addr);
  if (frame && (frame->any_address || va_contains(addr) || addr < 65536)) {
    frame->fault_address = addr;
    tl_frame = nullptr;
    siglongjmp(frame->env, 1);
  }
  chain(sig, info, uctx);
}

}  // namespace

void install_fault_handler() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa {};
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &g_prev_segv);
    sigaction(SIGBUS, &sa, &g_prev_bus);
  });
}

GuardOutcome run_guarded(bool any_address, CUresult (*body)(void*), void* arg) {
  GuardFrame frame;
  frame.any_address = any_address;
  GuardFrame* outer = tl_frame;
  // Touch the thread-local before any fault can happen, so that the signal
  // handler never triggers its lazy allocation.
  if (sigsetjmp(frame.env, 1) != 0) {
    tl_frame = outer;
    GuardOutcome out;
    out.faulted = true;
    out.address = frame.fault_address;
    out.result = CUDA_ERROR_ILLEGAL_ADDRESS;
    return out;
  }
  tl_frame = &frame;
  CUresult r = body(arg);
  tl_frame = outer;
  GuardOutcome out;
  out.result = r;
  return out;
}

}  // namespace nzsim
