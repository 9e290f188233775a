#include "hps.h"

int32_t hps_api_version(void) {
    return HPS_C_API_VERSION;
}
