// The TensorFlow custom op of hierarchical_parameter_server: `HpsLookup`, a
// lookup of one table of one model through swift-hps's C interface (hps.h,
// libhps_c.so), and `hps_tf_init`, which opens a configuration once per
// process (hps.Init, or implicitly on a layer's first run, as HugeCTR's
// plugin does). Compiled against the installed TensorFlow by build.py.
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>

#include "hps.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"

using namespace tensorflow;

namespace {

// The configurations opened in this process, by path; never closed (their
// background work runs until the process ends, as a server's would).
struct Opened {
    std::mutex mutex;
    std::map<std::string, hps_handle *> handles;
};

Opened &opened() {
    static Opened *registry = new Opened();
    return *registry;
}

// The device hps_open is given: HPS_DEVICE if set, else "auto".
const char *device() {
    const char *device = std::getenv("HPS_DEVICE");
    return device && *device ? device : "auto";
}

// The handle of `path`, opening it the first time; `*message` gets the
// failure's sentence.
hps_handle *open_once(const std::string &path, std::string *message) {
    Opened &registry = opened();
    std::lock_guard<std::mutex> lock(registry.mutex);
    auto found = registry.handles.find(path);
    if (found != registry.handles.end()) return found->second;
    hps_handle *handle = nullptr;
    char *error = nullptr;
    if (hps_open(path.c_str(), device(), &handle, &error) != HPS_OK) {
        *message = error ? error : "hps_open failed";
        hps_free_error(error);
        return nullptr;
    }
    registry.handles[path] = handle;
    return handle;
}

}  // namespace

// hps.Init: opens `path` now. Returns 0, or -1 with `*message` a malloc'ed
// sentence to free with `free`.
extern "C" int hps_tf_init(const char *path, char **message) {
    std::string failure;
    if (open_once(path ? path : "", &failure)) return 0;
    *message = strdup(failure.c_str());
    return -1;
}

REGISTER_OP("HpsLookup")
    .Input("ids: Tid")
    .Output("embeddings: float")
    .Attr("Tid: {int32, int64}")
    .Attr("model_name: string")
    .Attr("table_id: int")
    .Attr("emb_vec_size: int")
    .Attr("ps_config_file: string")
    .Attr("global_batch_size: int = 1")
    .SetIsStateful()
    .SetShapeFn([](shape_inference::InferenceContext *c) {
        int64_t size;
        TF_RETURN_IF_ERROR(c->GetAttr("emb_vec_size", &size));
        shape_inference::ShapeHandle out;
        TF_RETURN_IF_ERROR(c->Concatenate(c->input(0), c->Vector(size), &out));
        c->set_output(0, out);
        return absl::OkStatus();
    })
    .Doc("Looks up the vectors of `ids` in table `table_id` of model `model_name` of the HPS configuration `ps_config_file`.");

class HpsLookupOp : public OpKernel {
  public:
    explicit HpsLookupOp(OpKernelConstruction *context) : OpKernel(context) {
        OP_REQUIRES_OK(context, context->GetAttr("model_name", &model_));
        OP_REQUIRES_OK(context, context->GetAttr("table_id", &table_));
        OP_REQUIRES_OK(context, context->GetAttr("emb_vec_size", &size_));
        OP_REQUIRES_OK(context, context->GetAttr("ps_config_file", &config_));
        OP_REQUIRES(context, size_ > 0, errors::InvalidArgument("emb_vec_size must be positive, not ", size_));
    }

    void Compute(OpKernelContext *context) override {
        std::string failure;
        hps_handle *handle = open_once(config_, &failure);
        OP_REQUIRES(context, handle, errors::InvalidArgument(failure));
        OP_REQUIRES_OK(context, CheckTable(handle));
        const Tensor &ids = context->input(0);
        TensorShape shape = ids.shape();
        shape.AddDim(size_);
        Tensor *output = nullptr;
        OP_REQUIRES_OK(context, context->allocate_output(0, shape, &output));
        const uint64_t count = static_cast<uint64_t>(ids.NumElements());
        char *error = nullptr;
        hps_status status = hps_lookup(handle, model_.c_str(), static_cast<int32_t>(table_), ids.data(),
                                       ids.dtype() == DT_INT64 ? HPS_KEYS_INT64 : HPS_KEYS_INT32, count,
                                       output->flat<float>().data(), count * static_cast<uint64_t>(size_),
                                       HPS_MEMORY_HOST, 0, &error);
        if (status != HPS_OK) {
            std::string message = error ? error : "hps_lookup failed";
            hps_free_error(error);
            context->CtxFailure(errors::InvalidArgument(message));
        }
    }

  private:
    // The table exists and its vec size is emb_vec_size (checked once).
    absl::Status CheckTable(hps_handle *handle) {
        std::lock_guard<std::mutex> lock(checked_mutex_);
        if (checked_) return absl::OkStatus();
        std::string index = std::to_string(table_);
        int32_t found = 0, size = 0;
        char *error = nullptr;
        if (hps_table_info(handle, model_.c_str(), index.c_str(), &found, &size, &error) != HPS_OK) {
            std::string message = error ? error : "hps_table_info failed";
            hps_free_error(error);
            return errors::InvalidArgument(message);
        }
        if (size != size_) {
            return errors::InvalidArgument("emb_vec_size is ", size_, " but table ", table_, " of model ", model_, " in ",
                                           config_, " holds vectors of ", size, " floats.");
        }
        checked_ = true;
        return absl::OkStatus();
    }

    std::string model_;
    int64_t table_ = 0;
    int64_t size_ = 0;
    std::string config_;
    std::mutex checked_mutex_;
    bool checked_ = false;
};

REGISTER_KERNEL_BUILDER(Name("HpsLookup").Device(DEVICE_CPU), HpsLookupOp);
