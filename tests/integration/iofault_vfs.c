/* iofault_vfs.c — a SQLite VFS that makes writes fail on demand, linked into a test build of
 * the arraysync binary (arraysync_iofault: connector/main.c + this file; CMakeLists.txt) for
 * tests/integration/test_iofault.sh.
 *
 * Environment (read once, before main):
 *   ARRAYSYNC_FAULT_FILE   a path: while a file exists there, writes fail (unset: no shim at all)
 *   ARRAYSYNC_FAULT_MATCH  only files whose path contains this text (e.g. "target.db", which
 *                          also matches its -wal, -shm and -journal files); default: every file
 *   ARRAYSYNC_FAULT_MODE   full (default): xWrite/xTruncate fail with SQLITE_FULL, as on a full
 *                          disk; ioerr: they and xSync fail with SQLITE_IOERR_WRITE/_FSYNC
 * The shim wraps the default VFS and registers itself as the default, so every connection the
 * process opens (state store, SQLite nodes) goes through it. Reads always succeed. Needs no
 * privileges (no tmpfs to mount). */
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static sqlite3_vfs *real_vfs;
static sqlite3_vfs fault_vfs;
static const char *fault_file, *fault_match;
static int fault_ioerr;

typedef struct fault_fd {
  sqlite3_file base;
  sqlite3_file *real; /* follows this struct in the same allocation */
  int match;          /* the path contains ARRAYSYNC_FAULT_MATCH */
} fault_fd;

static int faulty(sqlite3_file *f) {
  return ((fault_fd *)f)->match && access(fault_file, F_OK) == 0;
}
#define REAL(f) (((fault_fd *)(f))->real)

static int f_close(sqlite3_file *f) { return REAL(f)->pMethods->xClose(REAL(f)); }
static int f_read(sqlite3_file *f, void *b, int n, sqlite3_int64 off) {
  return REAL(f)->pMethods->xRead(REAL(f), b, n, off);
}
static int f_write(sqlite3_file *f, const void *b, int n, sqlite3_int64 off) {
  if (faulty(f)) return fault_ioerr ? SQLITE_IOERR_WRITE : SQLITE_FULL;
  return REAL(f)->pMethods->xWrite(REAL(f), b, n, off);
}
static int f_truncate(sqlite3_file *f, sqlite3_int64 size) {
  if (faulty(f)) return fault_ioerr ? SQLITE_IOERR_TRUNCATE : SQLITE_FULL;
  return REAL(f)->pMethods->xTruncate(REAL(f), size);
}
static int f_sync(sqlite3_file *f, int flags) {
  if (fault_ioerr && faulty(f)) return SQLITE_IOERR_FSYNC;
  return REAL(f)->pMethods->xSync(REAL(f), flags);
}
static int f_size(sqlite3_file *f, sqlite3_int64 *size) {
  return REAL(f)->pMethods->xFileSize(REAL(f), size);
}
static int f_lock(sqlite3_file *f, int l) { return REAL(f)->pMethods->xLock(REAL(f), l); }
static int f_unlock(sqlite3_file *f, int l) { return REAL(f)->pMethods->xUnlock(REAL(f), l); }
static int f_reserved(sqlite3_file *f, int *out) {
  return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}
static int f_control(sqlite3_file *f, int op, void *arg) {
  return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}
static int f_sector(sqlite3_file *f) { return REAL(f)->pMethods->xSectorSize(REAL(f)); }
static int f_devchar(sqlite3_file *f) {
  return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}
static int f_shm_map(sqlite3_file *f, int pg, int sz, int extend, void volatile **pp) {
  return REAL(f)->pMethods->xShmMap(REAL(f), pg, sz, extend, pp);
}
static int f_shm_lock(sqlite3_file *f, int off, int n, int flags) {
  return REAL(f)->pMethods->xShmLock(REAL(f), off, n, flags);
}
static void f_shm_barrier(sqlite3_file *f) { REAL(f)->pMethods->xShmBarrier(REAL(f)); }
static int f_shm_unmap(sqlite3_file *f, int del) {
  return REAL(f)->pMethods->xShmUnmap(REAL(f), del);
}
static int f_fetch(sqlite3_file *f, sqlite3_int64 off, int n, void **pp) {
  return REAL(f)->pMethods->xFetch(REAL(f), off, n, pp);
}
static int f_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p) {
  return REAL(f)->pMethods->xUnfetch(REAL(f), off, p);
}

static const sqlite3_io_methods fault_methods = {
    3,         f_close,    f_read,     f_write,   f_truncate,   f_sync,
    f_size,    f_lock,     f_unlock,   f_reserved, f_control,   f_sector,
    f_devchar, f_shm_map,  f_shm_lock, f_shm_barrier, f_shm_unmap, f_fetch,
    f_unfetch};

static int v_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out) {
  (void)vfs;
  fault_fd *p = (fault_fd *)f;
  p->real = (sqlite3_file *)&p[1];
  p->match = !fault_match || (name && strstr(name, fault_match) != NULL);
  int rc = real_vfs->xOpen(real_vfs, name, p->real, flags, out);
  /* the real methods' version decides which of ours SQLite may call */
  p->base.pMethods = p->real->pMethods ? &fault_methods : NULL;
  return rc;
}
static int v_delete(sqlite3_vfs *v, const char *name, int sync) {
  (void)v;
  return real_vfs->xDelete(real_vfs, name, sync);
}
static int v_access(sqlite3_vfs *v, const char *name, int flags, int *out) {
  (void)v;
  return real_vfs->xAccess(real_vfs, name, flags, out);
}
static int v_fullpath(sqlite3_vfs *v, const char *name, int n, char *out) {
  (void)v;
  return real_vfs->xFullPathname(real_vfs, name, n, out);
}
static void *v_dlopen(sqlite3_vfs *v, const char *name) {
  (void)v;
  return real_vfs->xDlOpen(real_vfs, name);
}
static void v_dlerror(sqlite3_vfs *v, int n, char *out) {
  (void)v;
  real_vfs->xDlError(real_vfs, n, out);
}
static void (*v_dlsym(sqlite3_vfs *v, void *h, const char *sym))(void) {
  (void)v;
  return real_vfs->xDlSym(real_vfs, h, sym);
}
static void v_dlclose(sqlite3_vfs *v, void *h) {
  (void)v;
  real_vfs->xDlClose(real_vfs, h);
}
static int v_random(sqlite3_vfs *v, int n, char *out) {
  (void)v;
  return real_vfs->xRandomness(real_vfs, n, out);
}
static int v_sleep(sqlite3_vfs *v, int us) {
  (void)v;
  return real_vfs->xSleep(real_vfs, us);
}
static int v_time(sqlite3_vfs *v, double *out) {
  (void)v;
  return real_vfs->xCurrentTime(real_vfs, out);
}
static int v_lasterr(sqlite3_vfs *v, int n, char *out) {
  (void)v;
  return real_vfs->xGetLastError ? real_vfs->xGetLastError(real_vfs, n, out) : 0;
}
static int v_time64(sqlite3_vfs *v, sqlite3_int64 *out) {
  (void)v;
  return real_vfs->xCurrentTimeInt64(real_vfs, out);
}

__attribute__((constructor)) static void install(void) {
  fault_file = getenv("ARRAYSYNC_FAULT_FILE");
  if (!fault_file || !*fault_file) return;
  fault_match = getenv("ARRAYSYNC_FAULT_MATCH");
  if (fault_match && !*fault_match) fault_match = NULL;
  const char *mode = getenv("ARRAYSYNC_FAULT_MODE");
  fault_ioerr = mode && strcmp(mode, "ioerr") == 0;
  real_vfs = sqlite3_vfs_find(NULL);
  if (!real_vfs) abort();
  fault_vfs = (sqlite3_vfs){
      .iVersion = 2,
      .szOsFile = (int)sizeof(fault_fd) + real_vfs->szOsFile,
      .mxPathname = real_vfs->mxPathname,
      .zName = "iofault",
      .xOpen = v_open,
      .xDelete = v_delete,
      .xAccess = v_access,
      .xFullPathname = v_fullpath,
      .xDlOpen = v_dlopen,
      .xDlError = v_dlerror,
      .xDlSym = v_dlsym,
      .xDlClose = v_dlclose,
      .xRandomness = v_random,
      .xSleep = v_sleep,
      .xCurrentTime = v_time,
      .xGetLastError = v_lasterr,
      .xCurrentTimeInt64 = v_time64,
  };
  if (sqlite3_vfs_register(&fault_vfs, 1) != SQLITE_OK) abort();
}
