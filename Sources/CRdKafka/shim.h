// librdkafka's C API (Debian librdkafka-dev) and its in-process mock cluster.
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
