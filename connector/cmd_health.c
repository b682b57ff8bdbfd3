/* cmd_health.c — `arraysync healthcheck URL` (see cmd_health.h). */
#include "cmd_health.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* http://HOST:PORT/PATH -> host, port, path ("[::1]" for IPv6). */
static int parse_url(const char *url, char *host, size_t hcap, char *port, size_t pcap,
                     const char **path) {
  if (strncmp(url, "http://", 7) != 0) return AS_EINVAL;
  const char *h = url + 7, *end;
  if (*h == '[') {
    end = strchr(h, ']');
    if (!end) return AS_EINVAL;
    snprintf(host, hcap, "%.*s", (int)(end - h - 1), h + 1);
    end++;
  } else {
    end = h + strcspn(h, ":/");
    snprintf(host, hcap, "%.*s", (int)(end - h), h);
  }
  if (!host[0]) return AS_EINVAL;
  snprintf(port, pcap, "80");
  if (*end == ':') {
    size_t pl = strspn(end + 1, "0123456789");
    if (pl == 0 || pl > 5) return AS_EINVAL;
    snprintf(port, pcap, "%.*s", (int)pl, end + 1);
    end += 1 + pl;
  }
  if (*end && *end != '/') return AS_EINVAL;
  *path = *end ? end : "/";
  return AS_OK;
}

static int wait_fd(int fd, short ev, int64_t deadline) {
  struct pollfd p = {.fd = fd, .events = ev};
  int64_t left = deadline - now_ms();
  if (left <= 0) return 0;
  int r;
  do r = poll(&p, 1, (int)left);
  while (r < 0 && errno == EINTR);
  return r;
}

static int exchange(int fd, const char *host, const char *path, int64_t deadline, char *status,
                    size_t cap) {
  char req[1200];
  int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n",
                   path, host);
  if (n < 0 || (size_t)n >= sizeof req) return AS_EINVAL;
  if (wait_fd(fd, POLLOUT, deadline) <= 0 || send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
    return AS_ERR;
  }
  size_t got = 0;
  while (got + 1 < cap && !memchr(status, '\n', got)) {
    if (wait_fd(fd, POLLIN, deadline) <= 0) return AS_ERR;
    ssize_t r = recv(fd, status + got, cap - 1 - got, 0);
    if (r <= 0) break;
    got += (size_t)r;
  }
  status[got] = '\0';
  status[strcspn(status, "\r\n")] = '\0';
  return got ? AS_OK : AS_ERR;
}

int as_cmd_healthcheck(const char *url, int timeout_ms, as_error *err) {
  char host[256], port[8];
  const char *path;
  if (parse_url(url, host, sizeof host, port, sizeof port, &path) != AS_OK) {
    return as_error_set(err, AS_DOM_IO, AS_EINVAL, "bad URL \"%s\" (expected http://HOST:PORT/"
                        "PATH)", url);
  }
  int64_t deadline = now_ms() + timeout_ms;
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
  struct addrinfo *res = NULL;
  int g = getaddrinfo(host, port, &hints, &res);
  if (g != 0) return as_error_set(err, AS_DOM_IO, AS_ERR, "%s: %s", host, gai_strerror(g));
  int rc = AS_ERR;
  char status[256] = "";
  for (struct addrinfo *a = res; a && rc != AS_OK; a = a->ai_next) {
    int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    int c = connect(fd, a->ai_addr, a->ai_addrlen);
    if (c == 0 || (errno == EINPROGRESS && wait_fd(fd, POLLOUT, deadline) > 0)) {
      int soerr = 0;
      socklen_t sl = sizeof soerr;
      getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
      if (soerr == 0) rc = exchange(fd, host, path, deadline, status, sizeof status);
      else errno = soerr;
    }
    close(fd);
  }
  freeaddrinfo(res);
  if (rc != AS_OK) {
    return as_error_set(err, AS_DOM_IO, AS_ERR, "no answer from %s:%s%s%s", host, port,
                        errno ? ": " : "", errno ? strerror(errno) : "");
  }
  const char *sp = strchr(status, ' ');
  if (strncmp(status, "HTTP/", 5) != 0 || !sp || strncmp(sp + 1, "200", 3) != 0) {
    return as_error_set(err, AS_DOM_IO, AS_ERR, "%s answered \"%.100s\"", url, status);
  }
  return AS_OK;
}
