// The functions of this module are static inline in its header.
#include "CHPSSupport.h"
