// util/fd_exchange.h: a descriptor offered by one process reaches another
// that presents the key, and nothing else does.
#include "util/fd_exchange.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <string>

namespace {

constexpr const char* kPrefix = "nzfdx-test";

int memfd_with(const std::string& text) {
  const int fd = memfd_create("fdx", MFD_CLOEXEC);
  EXPECT_GE(fd, 0);
  EXPECT_EQ(static_cast<ssize_t>(text.size()), pwrite(fd, text.data(), text.size(), 0));
  return fd;
}

std::string read_all(int fd) {
  char buf[256] = {};
  const ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

TEST(FdExchange, AnOfferedDescriptorReachesAnotherProcessWithTheKey) {
  const int fd = memfd_with("weights");
  const nz::fdx::Key key = nz::fdx::random_key();
  ASSERT_TRUE(nz::fdx::offer(kPrefix, key, fd)) << std::strerror(errno);
  close(fd);  // the offer keeps its own copy
  const pid_t parent = getpid();
  const uint64_t parent_id = nz::fdx::process_id();
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    const int got = nz::fdx::fetch(kPrefix, parent, parent_id, key, 5000);
    if (got < 0) _exit(2);
    // The same file: a write here is seen there.
    const bool same = read_all(got) == "weights" && pwrite(got, "W", 1, 0) == 1;
    _exit(same ? 0 : 3);
  }
  int status = 0;
  ASSERT_EQ(child, waitpid(child, &status, 0));
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(0, WEXITSTATUS(status));
  const int again = nz::fdx::fetch(kPrefix, getpid(), nz::fdx::process_id(), key, 5000);  // this process may ask itself too
  ASSERT_GE(again, 0) << std::strerror(errno);
  EXPECT_EQ("Weights", read_all(again));
  close(again);
  nz::fdx::withdraw(key);
}

TEST(FdExchange, AnotherKeyOrAWithdrawnOneGetsNothing) {
  const int fd = memfd_with("x");
  const nz::fdx::Key key = nz::fdx::random_key();
  ASSERT_TRUE(nz::fdx::offer(kPrefix, key, fd));
  close(fd);
  nz::fdx::Key wrong = key;
  wrong[7] ^= 1;
  errno = 0;
  EXPECT_EQ(-1, nz::fdx::fetch(kPrefix, getpid(), nz::fdx::process_id(), wrong, 5000));
  EXPECT_EQ(ENOKEY, errno);
  nz::fdx::withdraw(key);
  errno = 0;
  EXPECT_EQ(-1, nz::fdx::fetch(kPrefix, getpid(), nz::fdx::process_id(), key, 5000));
  EXPECT_EQ(ENOKEY, errno);
  EXPECT_NE(nz::fdx::random_key(), nz::fdx::random_key());
}

TEST(FdExchange, AProcessThatOffersNothingAnswersNothing) {
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) _exit(0);
  waitpid(child, nullptr, 0);  // gone: nobody listens under its pid
  errno = 0;
  EXPECT_EQ(-1, nz::fdx::fetch(kPrefix, child, nz::fdx::process_id(), nz::fdx::random_key(), 1000));
  EXPECT_EQ(ECONNREFUSED, errno);
}

// A peer that connects and says nothing holds the answering thread for its
// timeout (2 s) at most: the next asker still gets its descriptor.
TEST(FdExchange, ASilentPeerDoesNotStopTheNextAsker) {
  const int fd = memfd_with("late");
  const nz::fdx::Key key = nz::fdx::random_key();
  ASSERT_TRUE(nz::fdx::offer(kPrefix, key, fd));
  close(fd);
  const int silent = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const int n = std::snprintf(addr.sun_path + 1, sizeof(addr.sun_path) - 1, "%s-%d-%016llx", kPrefix, getpid(),
                              static_cast<unsigned long long>(nz::fdx::process_id()));
  ASSERT_EQ(0, connect(silent, reinterpret_cast<sockaddr*>(&addr),
                       static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + static_cast<size_t>(n))));
  const int got = nz::fdx::fetch(kPrefix, getpid(), nz::fdx::process_id(), key, 10000);
  ASSERT_GE(got, 0) << std::strerror(errno);
  EXPECT_EQ("late", read_all(got));
  close(got);
  close(silent);
  nz::fdx::withdraw(key);
}

// A forked child (a DataLoader worker) lets go of the offered descriptors
// and of the socket: it holds no memory of the parent's, the parent's
// offers still answer, and the child has an id of its own.
TEST(FdExchange, AForkedChildLetsGoOfTheOffers) {
  const int fd = memfd_create("fdx-held", MFD_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(0, ftruncate(fd, 4096));
  const nz::fdx::Key key = nz::fdx::random_key();
  ASSERT_TRUE(nz::fdx::offer(kPrefix, key, fd));
  close(fd);
  const uint64_t parent_id = nz::fdx::process_id();
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    int held = 0;
    char link[256];
    for (int i = 0; i < 1024; ++i) {
      const std::string path = "/proc/self/fd/" + std::to_string(i);
      const ssize_t n = readlink(path.c_str(), link, sizeof link - 1);
      if (n > 0 && std::string(link, static_cast<size_t>(n)).find("fdx-held") != std::string::npos) ++held;
    }
    _exit(held == 0 && nz::fdx::process_id() != parent_id ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(child, waitpid(child, &status, 0));
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "the child still held the offered memory";
  const int got = nz::fdx::fetch(kPrefix, getpid(), parent_id, key, 5000);
  EXPECT_GE(got, 0) << "the parent's offer must still answer";
  if (got >= 0) close(got);
  nz::fdx::withdraw(key);
}

}  // namespace
