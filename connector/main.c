/* main.c — the arraysync command line. Everything else lives in the core library. */
#include <getopt.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "adapter.h"
#include "as_cli.h"
#include "as_config.h"
#include "as_engine.h"
#include "as_log.h"
#include "as_state.h"
#include "cmd_check.h"
#include "cmd_conflicts.h"
#include "cmd_health.h"
#include "cmd_help.h"
#include "cmd_infer.h"
#include "cmd_verify.h"
#include "as_yaml.h"

#ifndef ARRAYSYNC_VERSION
#define ARRAYSYNC_VERSION "0.0.0"
#endif

enum { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

static atomic_int stop_flag; /* lock-free atomics are safe in signal handlers */
static atomic_int reload_flag;

static void on_stop(int sig) {
  (void)sig;
  stop_flag = 1;
}

static void on_hup(int sig) {
  (void)sig;
  reload_flag = 1;
  stop_flag = 1;
}

static void usage(FILE *out) {
  fprintf(out,
          "Usage: arraysync COMMAND [-c FILE] [OPTION]...\n"
          "Keeps MongoDB collections and PostgreSQL/SQLite tables in sync, both ways (version %s).\n"
          "\n"
          "Commands:\n"
          "  run -c FILE            sync continuously (snapshot first where a target has no\n"
          "                         checkpoint)\n"
          "  check -c FILE          validate the config and mappings; print the DDL they imply\n"
          "  check --live -c FILE   also check the live nodes (connections, replica set,\n"
          "                         privileges, existing tables against the mappings, writable\n"
          "                         files); changes nothing\n"
          "  install -c FILE        create tables, bookkeeping and capture triggers on every node\n"
          "  uninstall -c FILE      remove triggers and bookkeeping (user data stays)\n"
          "  infer -c FILE --node NODE (--collection NAME | --table NAME)\n"
          "                         write a mapping inferred from a collection's documents (a\n"
          "                         sample) or from a table's columns\n"
          "  status -c FILE         per stream: phase, checkpoint, lag, counts (reads the state\n"
          "                         store)\n"
          "  dlq list -c FILE       list dead letters\n"
          "  dlq retry -c FILE      re-apply open dead letters (after fixing the mapping or data)\n"
          "  conflicts list -c FILE [--mapping M] [--open] [--json]\n"
          "                         list recorded conflicts (both versions are kept)\n"
          "  conflicts show ID -c FILE [--json]\n"
          "                         both versions side by side, disputed columns marked\n"
          "  conflicts resolve ID -c FILE (--take local|remote|NODE | --row FILE.json)\n"
          "  conflicts resolve --all -c FILE --take local|remote|NODE [--mapping M]\n"
          "                         write the chosen row as a new change (the connector carries\n"
          "                         it to every node) and mark the conflict resolved\n"
          "  healthcheck URL        exit 0 when URL (http://HOST:PORT/healthz of --metrics)\n"
          "                         answers 200\n"
          "  verify -c FILE         compare the nodes' data per mapping (arraysync verify --help)\n"
          "  version                print the version and the libraries' versions\n"
          "  help [config]          this text, or every configuration key (docs/CONFIG.md)\n"
          "\n"
          "Options:\n"
          "  -c, --config FILE          top-level configuration (YAML)\n"
          "      --log-level LEVEL      error | warn | info | debug | trace (default: config or info)\n"
          "      --log-format FORMAT    text | json (default: config or text)\n"
          "      --metrics HOST:PORT    serve Prometheus /metrics and /healthz (e.g. 127.0.0.1:9187)\n"
          "      --exit-when-idle DUR   run: stop cleanly once every stream has been idle for DUR\n"
          "      --resnapshot           run: copy every mapping again (after lost change history)\n"
          "      --json                 status, dlq list, conflicts list/show: JSON output\n"
          "      --live                 check: also check the live nodes\n"
          "      --node NODE            infer: the node to read\n"
          "      --collection NAME      infer: the collection to sample\n"
          "      --table NAME           infer: the table to describe\n"
          "      --sample N             infer: documents to sample (default 1000)\n"
          "      --first                infer: the first N documents instead of a random sample\n"
          "  -o, --output FILE          infer: write the mapping to FILE (default: standard output)\n"
          "  -h, --help                 print this help and exit\n"
          "      --version              print the version and exit\n"
          "\n"
          "Signals: SIGTERM/SIGINT finish the batch in flight, commit checkpoints and exit 0;\n"
          "SIGHUP reloads the configuration and mappings (streams restart from their checkpoints).\n"
          "\n"
          "Exit status: 0 ok, 1 runtime error (check --live: a check failed), 2 bad usage or bad\n"
          "configuration.\n"
          "\n"
          "Every configuration key, with types, defaults and examples: arraysync help config.\n",
          ARRAYSYNC_VERSION);
}

typedef struct cli_opts {
  const char *config;
  const char *log_level;
  const char *log_format;
  const char *metrics;
  const char *idle;
  bool json;
  bool resnapshot;
  bool live;
  as_cmd_infer_opts infer;
} cli_opts;

static int parse_opts(int argc, char **argv, cli_opts *o) {
  static const struct option longopts[] = {
      {"config", required_argument, NULL, 'c'},     {"log-level", required_argument, NULL, 'L'},
      {"log-format", required_argument, NULL, 'F'}, {"metrics", required_argument, NULL, 'M'},
      {"exit-when-idle", required_argument, NULL, 'I'}, {"json", no_argument, NULL, 'J'},
      {"resnapshot", no_argument, NULL, 'R'},       {"live", no_argument, NULL, 'V'},
      {"node", required_argument, NULL, 'N'},       {"collection", required_argument, NULL, 'C'},
      {"table", required_argument, NULL, 'T'},      {"sample", required_argument, NULL, 'S'},
      {"first", no_argument, NULL, 'P'},            {"output", required_argument, NULL, 'o'},
      {"help", no_argument, NULL, 'h'},             {NULL, 0, NULL, 0}};
  optind = 1;
  int ch;
  char *end = NULL;
  while ((ch = getopt_long(argc, argv, "c:ho:", longopts, NULL)) != -1) {
    switch (ch) {
      case 'c': o->config = optarg; break;
      case 'L': o->log_level = optarg; break;
      case 'F': o->log_format = optarg; break;
      case 'M': o->metrics = optarg; break;
      case 'I': o->idle = optarg; break;
      case 'J': o->json = true; break;
      case 'R': o->resnapshot = true; break;
      case 'V': o->live = true; break;
      case 'N': o->infer.node = optarg; break;
      case 'C': o->infer.collection = optarg; break;
      case 'T': o->infer.table = optarg; break;
      case 'P': o->infer.first = true; break;
      case 'o': o->infer.output = optarg; break;
      case 'S':
        o->infer.sample = (size_t)strtoull(optarg, &end, 10);
        if (!*optarg || *end || o->infer.sample == 0 || o->infer.sample > 10000000) {
          fprintf(stderr, "arraysync: --sample needs a number of documents from 1 to 10000000\n");
          return EXIT_USAGE;
        }
        break;
      case 'h': usage(stdout); exit(EXIT_OK);
      default: return EXIT_USAGE;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "arraysync: unexpected argument '%s' (see arraysync help)\n", argv[optind]);
    return EXIT_USAGE;
  }
  return EXIT_OK;
}

static int apply_log_settings(const cli_opts *o, const as_config *c) {
  const char *lvl = o->log_level ? o->log_level : (c && c->log_level ? c->log_level : "info");
  as_log_level l;
  if (!as_log_parse_level(lvl, &l)) {
    fprintf(stderr, "arraysync: unknown log level '%s' (error, warn, info, debug, trace)\n", lvl);
    return EXIT_USAGE;
  }
  as_log_set_level(l);
  const char *fmt = o->log_format ? o->log_format : (c && c->log_format ? c->log_format : "text");
  if (strcmp(fmt, "json") != 0 && strcmp(fmt, "text") != 0) {
    fprintf(stderr, "arraysync: unknown log format '%s' (text, json)\n", fmt);
    return EXIT_USAGE;
  }
  as_log_set_json(strcmp(fmt, "json") == 0);
  return EXIT_OK;
}

static int load_config(const cli_opts *o, as_config **cfg) {
  if (!o->config) {
    fprintf(stderr, "arraysync: -c FILE is required (the top-level configuration)\n");
    return EXIT_USAGE;
  }
  as_error err;
  if (as_config_load(o->config, cfg, &err) != AS_OK) {
    fprintf(stderr, "%s\n", err.message);
    return EXIT_USAGE;
  }
  return apply_log_settings(o, *cfg);
}

static int cmd_run(const cli_opts *o) {
  as_config *cfg = NULL;
  int rc = load_config(o, &cfg);
  if (rc != EXIT_OK) return rc;
  int64_t idle_ms = 0;
  if (o->idle && as_parse_duration_ms(o->idle, &idle_ms) != AS_OK) {
    fprintf(stderr, "arraysync: --exit-when-idle: bad duration '%s' (e.g. 500ms, 5s)\n", o->idle);
    as_config_free(cfg);
    return EXIT_USAGE;
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sa.sa_handler = on_hup;
  sigaction(SIGHUP, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  bool resnapshot = o->resnapshot;
  for (;;) {
    as_engine_opts eo = {.stop = &stop_flag,
                         .exit_when_idle_ms = idle_ms,
                         .metrics_listen = o->metrics,
                         .progress_tty = isatty(STDERR_FILENO) && as_log_current_level <= AS_LOG_INFO,
                         .resnapshot = resnapshot};
    resnapshot = false; /* only the first start: a SIGHUP reload resumes from checkpoints */
    as_error err;
    AS_LOG(AS_LOG_INFO, "main", "arraysync %s starting with %s", ARRAYSYNC_VERSION, cfg->file);
    int erc = as_engine_run(cfg, &eo, &err);
    if (erc == AS_RETRY && stop_flag && !reload_flag) {
      AS_LOG(AS_LOG_INFO, "main", "stopped while waiting to connect");
      break;
    }
    if (erc != AS_OK) {
      AS_LOG(AS_LOG_ERROR, "main", "%s", err.message);
      rc = erc == AS_EINVAL ? EXIT_USAGE : EXIT_RUNTIME;
      break;
    }
    if (!reload_flag) break;
    reload_flag = 0;
    stop_flag = 0;
    as_config *next = NULL;
    if (as_config_load(o->config, &next, &err) != AS_OK) {
      AS_LOG(AS_LOG_ERROR, "main", "reload failed, keeping the running configuration: %s", err.message);
    } else {
      as_config_free(cfg);
      cfg = next;
      AS_LOG(AS_LOG_INFO, "main", "configuration reloaded");
    }
  }
  as_config_free(cfg);
  return rc;
}

static int cmd_admin(const cli_opts *o, bool install) {
  as_config *cfg = NULL;
  int rc = load_config(o, &cfg);
  if (rc != EXIT_OK) return rc;
  as_error err;
  int r = install ? as_engine_install(cfg, &err) : as_engine_uninstall(cfg, &err);
  if (r != AS_OK) fprintf(stderr, "arraysync: %s\n", err.message);
  else printf("%s: done\n", install ? "install" : "uninstall");
  as_config_free(cfg);
  return r == AS_OK ? EXIT_OK : (r == AS_EINVAL ? EXIT_USAGE : EXIT_RUNTIME);
}

static int cmd_check(const cli_opts *o) {
  if (!o->config) {
    fprintf(stderr, "arraysync: -c FILE is required\n");
    return EXIT_USAGE;
  }
  as_error err;
  int r = as_cmd_check(o->config, stdout, &err);
  if (r != AS_OK) {
    fprintf(stderr, "%s\n", err.message);
    return r == AS_EINVAL ? EXIT_USAGE : EXIT_RUNTIME;
  }
  if (!o->live) return EXIT_OK;
  fflush(stdout);
  r = as_cmd_check_live(o->config, stdout, &err);
  if (r == AS_EINVAL) {
    fprintf(stderr, "%s\n", err.message);
    return EXIT_USAGE;
  }
  return r == AS_OK ? EXIT_OK : EXIT_RUNTIME;
}

static int cmd_infer(const cli_opts *o) {
  as_config *cfg = NULL;
  int rc = load_config(o, &cfg);
  if (rc != EXIT_OK) return rc;
  as_error err;
  int r = as_cmd_infer(cfg, &o->infer, stdout, &err);
  if (r != AS_OK) fprintf(stderr, "arraysync: %s\n", err.message);
  as_config_free(cfg);
  return r == AS_OK ? EXIT_OK : r == AS_EINVAL ? EXIT_USAGE : EXIT_RUNTIME;
}

/* libmongoc initialises itself while the process loads and keeps its performance counters
 * in a shared-memory file, /dev/shm/mongoc-PID, unless MONGOC_DISABLE_SHM is set. A connector
 * killed with -9 leaves that file behind, and a later process given the same PID then prints
 * a warning on stderr. So, once, before anything else: the file this start made is removed
 * and the program starts again in the same process with the variable set (counters in the
 * heap). Where that fails, it goes on as it is. */
static void no_mongoc_shm(char **argv) {
  if (getenv("MONGOC_DISABLE_SHM")) return;
  if (setenv("MONGOC_DISABLE_SHM", "1", 1) != 0) return;
  char shm[64];
  snprintf(shm, sizeof shm, "/dev/shm/mongoc-%ld", (long)getpid());
  unlink(shm);
  execv("/proc/self/exe", argv);
}

int main(int argc, char **argv) {
  no_mongoc_shm(argv);
  if (argc < 2) {
    usage(stderr);
    return EXIT_USAGE;
  }
  const char *cmd = argv[1];
  if (strcmp(cmd, "help") == 0 && argc > 2 && strcmp(argv[2], "config") == 0) {
    as_cmd_help_config(stdout);
    return EXIT_OK;
  }
  if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
    if (argc > 2 && strcmp(cmd, "help") == 0) {
      fprintf(stderr, "arraysync: unknown help topic '%s' (try: arraysync help config)\n", argv[2]);
      return EXIT_USAGE;
    }
    usage(stdout);
    return EXIT_OK;
  }
  if (strcmp(cmd, "--version") == 0) {
    printf("arraysync %s\n", ARRAYSYNC_VERSION);
    return EXIT_OK;
  }
  if (strcmp(cmd, "version") == 0) {
    as_cmd_version(stdout);
    return EXIT_OK;
  }
  if (strcmp(cmd, "healthcheck") == 0) {
    if (argc != 3) {
      fprintf(stderr, "arraysync: healthcheck needs a URL (http://127.0.0.1:9187/healthz)\n");
      return EXIT_USAGE;
    }
    as_error err;
    int r = as_cmd_healthcheck(argv[2], 5000, &err);
    if (r != AS_OK) fprintf(stderr, "arraysync: healthcheck: %s\n", err.message);
    return r == AS_OK ? EXIT_OK : r == AS_EINVAL ? EXIT_USAGE : EXIT_RUNTIME;
  }
  if (strcmp(cmd, "verify") == 0) return as_cmd_verify(argc - 1, argv + 1);
  if (strcmp(cmd, "conflicts") == 0) return as_cmd_conflicts(argc - 1, argv + 1);
  const char *sub = NULL;
  int shift = 1;
  if (strcmp(cmd, "dlq") == 0) {
    if (argc < 3 || argv[2][0] == '-') {
      fprintf(stderr, "arraysync: dlq needs a subcommand (list | retry)\n");
      return EXIT_USAGE;
    }
    sub = argv[2];
    shift = 2;
  }
  cli_opts o = {0};
  int rc = parse_opts(argc - shift, argv + shift, &o);
  if (rc != EXIT_OK) return rc;
  if (apply_log_settings(&o, NULL) != EXIT_OK) return EXIT_USAGE;
  if (strcmp(cmd, "run") == 0) return cmd_run(&o);
  if (strcmp(cmd, "check") == 0) return cmd_check(&o);
  if (strcmp(cmd, "infer") == 0) return cmd_infer(&o);
  if (strcmp(cmd, "install") == 0) return cmd_admin(&o, true);
  if (strcmp(cmd, "uninstall") == 0) return cmd_admin(&o, false);
  if (strcmp(cmd, "status") == 0 || strcmp(cmd, "dlq") == 0) {
    as_config *cfg = NULL;
    rc = load_config(&o, &cfg);
    if (rc != EXIT_OK) return rc;
    as_error err;
    int r;
    if (strcmp(cmd, "status") == 0) {
      r = as_cli_status(cfg, stdout, o.json, &err);
    } else if (strcmp(cmd, "dlq") == 0 && strcmp(sub, "list") == 0) {
      r = as_cli_dlq_list(cfg, stdout, o.json, &err);
    } else if (strcmp(cmd, "dlq") == 0 && strcmp(sub, "retry") == 0) {
      r = as_engine_dlq_retry(cfg, stdout, &err);
      if (r > 0) {
        fprintf(stderr, "arraysync: %d dead letters still failing\n", r);
        as_config_free(cfg);
        return EXIT_RUNTIME;
      }
    } else {
      fprintf(stderr, "arraysync: unknown subcommand '%s %s' (see arraysync help)\n", cmd, sub);
      as_config_free(cfg);
      return EXIT_USAGE;
    }
    if (r < 0) fprintf(stderr, "arraysync: %s\n", err.message);
    as_config_free(cfg);
    return r < 0 ? EXIT_RUNTIME : EXIT_OK;
  }
  fprintf(stderr, "arraysync: unknown command '%s' (see arraysync help)\n", cmd);
  return EXIT_USAGE;
}
