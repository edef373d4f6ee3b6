// fd_exchange.cpp: see fd_exchange.h.
#include "util/fd_exchange.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <vector>

namespace nz::fdx {
namespace {

struct Offer {
  Key key;
  int fd;
};

// Never destroyed: the answering thread may still run while the process
// exits, after static destructors.
std::mutex& g_mu = *new std::mutex;
std::vector<Offer>& g_offers = *new std::vector<Offer>;
int g_listen_fd = -1;
pid_t g_listen_pid = 0;
std::atomic<uint64_t> g_process_id{0};
std::atomic<pid_t> g_process_id_pid{0};

uint64_t fresh_id() noexcept {
  const Key k = random_key();
  uint64_t id = 0;
  std::memcpy(&id, k.data(), sizeof id);
  return id;
}

// A forked child has the socket and the offered descriptors but not the
// answering thread: it lets go of all of them (the prepare handler holds the
// lock across the fork, so the lists are whole in the child).
void prepare_fork() noexcept { g_mu.lock(); }
void after_fork_in_parent() noexcept { g_mu.unlock(); }
void after_fork_in_child() noexcept {
  if (g_listen_fd >= 0) close(g_listen_fd);
  g_listen_fd = -1;
  g_listen_pid = 0;
  for (const Offer& o : g_offers) close(o.fd);
  g_offers.clear();
  g_mu.unlock();
}

int dup_cloexec(int fd) noexcept { return fcntl(fd, F_DUPFD_CLOEXEC, 0); }

socklen_t socket_name(const char* prefix, pid_t pid, uint64_t id, sockaddr_un* addr) noexcept {
  std::memset(addr, 0, sizeof(*addr));
  addr->sun_family = AF_UNIX;
  // Abstract namespace: leading NUL, no file left behind, gone with the process.
  const int n = std::snprintf(addr->sun_path + 1, sizeof(addr->sun_path) - 1, "%s-%d-%016llx", prefix,
                              static_cast<int>(pid), static_cast<unsigned long long>(id));
  if (n <= 0 || static_cast<size_t>(n) >= sizeof(addr->sun_path) - 1) return 0;
  return static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + static_cast<size_t>(n));
}

void set_timeouts(int s, int timeout_ms) noexcept {
  timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

bool read_exactly(int s, void* out, size_t n) noexcept {
  auto* p = static_cast<uint8_t*>(out);
  while (n > 0) {
    const ssize_t got = recv(s, p, n, 0);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return false;
    p += got;
    n -= static_cast<size_t>(got);
  }
  return true;
}

// One request: a key in, a status byte out (0: found, with the descriptor).
void answer(int c) noexcept {
  set_timeouts(c, 2000);  // a peer that connects and says nothing must not hold us
  ucred cred{};
  socklen_t len = sizeof(cred);
  if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || cred.uid != geteuid()) return;
  Key key{};
  if (!read_exactly(c, key.data(), key.size())) return;
  int fd = -1;
  {
    std::lock_guard lock(g_mu);
    for (const Offer& o : g_offers)
      if (o.key == key) fd = dup_cloexec(o.fd);
  }
  uint8_t status = fd >= 0 ? 0 : 1;
  iovec iov{&status, 1};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  if (fd >= 0) {
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    cmsghdr* cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(cm), &fd, sizeof(int));
  }
  while (sendmsg(c, &msg, MSG_NOSIGNAL) < 0 && errno == EINTR) {
  }
  if (fd >= 0) close(fd);
}

void serve(void* arg) noexcept {
  const int s = static_cast<int>(reinterpret_cast<intptr_t>(arg));
  for (;;) {
    const int c = accept4(s, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        timespec pause{0, 10'000'000};  // out of descriptors for a moment: try again
        nanosleep(&pause, nullptr);
        continue;
      }
      return;
    }
    answer(c);
    close(c);
  }
}

void* serve_and_forget(void* arg) noexcept {
  serve(arg);
  // accept failed for good: the next offer starts a new socket and thread.
  std::lock_guard lock(g_mu);
  if (g_listen_fd == static_cast<int>(reinterpret_cast<intptr_t>(arg))) {
    close(g_listen_fd);
    g_listen_fd = -1;
  }
  return nullptr;
}

bool start_locked(const char* prefix) noexcept {
  if (g_listen_fd >= 0 && g_listen_pid == getpid()) return true;
  static std::once_flag fork_handlers;
  std::call_once(fork_handlers, [] { pthread_atfork(prepare_fork, after_fork_in_parent, after_fork_in_child); });
  sockaddr_un addr;
  const socklen_t len = socket_name(prefix, getpid(), process_id(), &addr);
  if (len == 0) {
    errno = ENAMETOOLONG;
    return false;
  }
  const int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) return false;
  if (bind(s, reinterpret_cast<sockaddr*>(&addr), len) != 0 || listen(s, 16) != 0) {
    const int e = errno;
    close(s);
    errno = e;
    return false;
  }
  // The thread inherits this mask: every signal blocked on it.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_t thread;
  const int rc =
      pthread_create(&thread, &attr, serve_and_forget, reinterpret_cast<void*>(static_cast<intptr_t>(s)));
  pthread_attr_destroy(&attr);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (rc != 0) {
    close(s);
    errno = rc;
    return false;
  }
  g_listen_fd = s;
  g_listen_pid = getpid();
  return true;
}

}  // namespace

Key random_key() noexcept {
  Key k{};
  if (getrandom(k.data(), k.size(), GRND_NONBLOCK) == static_cast<ssize_t>(k.size())) return k;
  timespec t{};
  clock_gettime(CLOCK_MONOTONIC, &t);
  static std::atomic<uint64_t> counter{0};
  const uint64_t a = static_cast<uint64_t>(t.tv_nsec) ^ (static_cast<uint64_t>(t.tv_sec) << 32);
  const uint64_t b = (static_cast<uint64_t>(getpid()) << 32) ^ counter.fetch_add(1) ^ (a * 0x9E3779B97F4A7C15ull);
  std::memcpy(k.data(), &a, 8);
  std::memcpy(k.data() + 8, &b, 8);
  return k;
}

uint64_t process_id() noexcept {
  const pid_t me = getpid();
  for (;;) {
    pid_t owner = g_process_id_pid.load(std::memory_order_acquire);
    if (owner == me) return g_process_id.load(std::memory_order_relaxed);
    // The first caller in this process (or in this forked child) draws it;
    // -pid marks the draw under way for the others.
    if (owner != -me && g_process_id_pid.compare_exchange_strong(owner, -me)) {
      g_process_id.store(fresh_id(), std::memory_order_relaxed);
      g_process_id_pid.store(me, std::memory_order_release);
    }
  }
}

bool offer(const char* prefix, const Key& key, int fd) noexcept {
  std::lock_guard lock(g_mu);
  if (!start_locked(prefix)) return false;
  const int copy = dup_cloexec(fd);
  if (copy < 0) return false;
  try {
    g_offers.push_back(Offer{key, copy});
  } catch (...) {
    close(copy);
    errno = ENOMEM;
    return false;
  }
  return true;
}

void withdraw(const Key& key) noexcept {
  std::lock_guard lock(g_mu);
  for (size_t i = 0; i < g_offers.size(); ++i) {
    if (g_offers[i].key != key) continue;
    close(g_offers[i].fd);
    g_offers.erase(g_offers.begin() + static_cast<std::ptrdiff_t>(i));
    return;
  }
}

int fetch(const char* prefix, pid_t pid, uint64_t process_id, const Key& key, int timeout_ms) noexcept {
  sockaddr_un addr;
  const socklen_t len = socket_name(prefix, pid, process_id, &addr);
  if (len == 0) {
    errno = ENAMETOOLONG;
    return -1;
  }
  const int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) return -1;
  set_timeouts(s, timeout_ms);
  auto fail = [s](int e) {
    close(s);
    errno = e;
    return -1;
  };
  if (connect(s, reinterpret_cast<sockaddr*>(&addr), len) != 0) return fail(errno);
  if (send(s, key.data(), key.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(key.size())) return fail(errno);
  uint8_t status = 1;
  iovec iov{&status, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t got;
  while ((got = recvmsg(s, &msg, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR) {
  }
  if (got < 0) return fail(errno == EAGAIN || errno == EWOULDBLOCK ? ETIMEDOUT : errno);
  int fd = -1;
  for (cmsghdr* cm = CMSG_FIRSTHDR(&msg); cm != nullptr; cm = CMSG_NXTHDR(&msg, cm))
    if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) std::memcpy(&fd, CMSG_DATA(cm), sizeof(int));
  close(s);
  if (got != 1 || status != 0 || fd < 0) {
    if (fd >= 0) close(fd);
    errno = got == 1 ? ENOKEY : EPROTO;
    return -1;
  }
  return fd;
}

}  // namespace nz::fdx
