// exports.cpp: route (a), direct linking (-lcuda). For every row of the hook
// list, libneuzip.so exports the driver's own symbol name as a one-instruction
// jump to our wrapper, so that LD_PRELOAD puts it ahead of libcuda.so.1.
//
// The wrappers live in several files; aliases (.set / __attribute__((alias)))
// must sit in the wrapper's own translation unit, so jumps are used instead,
// which keeps the hook list the single place that names the symbols.
#include "hook_list.h"

#if defined(__x86_64__)
#define NZ_JUMP_TO(target) "jmp " target
#elif defined(__aarch64__)
#define NZ_JUMP_TO(target) "b " target
#else
#error "exports.cpp: add the jump instruction for this architecture"
#endif

#define NZ_EXPORT_JUMP(id, exported, request, first, kind) \
  ".globl " exported "\n"                                  \
  ".type " exported ", %function\n"                        \
  ".p2align 4\n" exported ":\n" NZ_JUMP_TO("nzw_" #id) "\n"   \
  ".size " exported ", .-" exported "\n"

__asm__(".text\n" NZ_HOOK_LIST(NZ_EXPORT_JUMP));
