// The TensorFlow custom op of hierarchical_parameter_server: `HpsLookup`, a
// lookup of one table of one model through swift-hps's C interface (hps.h,
// libhps_c.so), and `hps_tf_init`, which opens a configuration once per
// process (hps.Init, or implicitly on a layer's first run, as HugeCTR's
// plugin does). Compiled against the installed TensorFlow by build.py.
//
// Fusion (`fuse_embedding_table: true`): the lookups of a model's layers are
// combined into one `hps_lookup_requests` call, which looks up each fusion
// group once. HugeCTR's plugin makes each layer's op wait until every table
// of the group has arrived (a rendezvous across TensorFlow's threads, which
// stalls when they are fewer than the layers). Here no op waits for another:
// `HpsLookup` is asynchronous; the op that finds no lookup of its model
// running looks up its own request at once, on its own thread, and the
// requests that arrive meanwhile queue and return; it then looks them all up
// in one call and completes each of their ops.
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <atomic>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

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

// The failure's sentence of a call that set `error` (freed here).
std::string sentence(char *error, const char *call) {
    std::string message = error ? error : std::string(call) + " failed";
    hps_free_error(error);
    return message;
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
        *message = sentence(error, "hps_open");
        return nullptr;
    }
    registry.handles[path] = handle;
    return handle;
}

// Combines the lookups of one model's layers (see the top of this file) by
// flat combining: the op that finds no lookup running leads: it looks up
// every request queued (its own first), and again while more arrive, then
// completes each op; an op that arrives while one leads queues its request
// and returns, and the leader completes it. A lone op looks up at once on its
// own thread, with no hand-off.
class Combiner {
  public:
    // One layer's lookup: its table, keys and output, and what completes its op
    // (an empty string for success, else the failure's sentence).
    struct Request {
        hps_lookup_request lookup;
        hps_key_type key_type;
        std::function<void(const std::string &)> done;
    };

    Combiner(hps_handle *handle, std::string model) : handle_(handle), model_(std::move(model)) {}

    void Submit(Request request) {
        std::unique_lock<std::mutex> lock(mutex_);
        queue_.push_back(std::move(request));
        if (leading_) return;
        leading_ = true;
        while (!queue_.empty()) {
            std::vector<Request> batch;
            batch.swap(queue_);
            lock.unlock();
            LookUp(batch);
            lock.lock();
        }
        leading_ = false;
    }

  private:
    // One call per key type for the batch's requests, then each op completed.
    void LookUp(std::vector<Request> &batch) {
        for (hps_key_type type : {HPS_KEYS_INT32, HPS_KEYS_INT64}) {
            std::vector<hps_lookup_request> lookups;
            std::vector<Request *> owners;
            for (Request &request : batch) {
                if (request.key_type != type) continue;
                lookups.push_back(request.lookup);
                owners.push_back(&request);
            }
            if (lookups.empty()) continue;
            std::string failure = Call(lookups.data(), lookups.size(), type);
            for (size_t i = 0; i < owners.size(); ++i) {
                // A combined call is checked whole before any lookup: when it
                // fails, each request alone says whether it is the bad one.
                owners[i]->done(failure.empty() || owners.size() == 1 ? failure : Call(&lookups[i], 1, type));
            }
        }
    }

    std::string Call(const hps_lookup_request *lookups, size_t count, hps_key_type type) {
        char *error = nullptr;
        if (hps_lookup_requests(handle_, model_.c_str(), lookups, count, type, &error) == HPS_OK) return "";
        return sentence(error, "hps_lookup_requests");
    }

    hps_handle *handle_;
    std::string model_;
    std::mutex mutex_;
    bool leading_ = false;
    std::vector<Request> queue_;
};

// The combiner of `model` of `path`'s handle when its tables are fused, else
// nullptr; made at the first lookup and kept for the process, as the handle.
Combiner *combiner_for(hps_handle *handle, const std::string &path, const std::string &model, std::string *message) {
    static std::mutex mutex;
    static auto *combiners = new std::map<std::pair<std::string, std::string>, Combiner *>();
    std::lock_guard<std::mutex> lock(mutex);
    auto key = std::make_pair(path, model);
    auto found = combiners->find(key);
    if (found != combiners->end()) return found->second;
    hps_model_description description;
    char *error = nullptr;
    if (hps_describe_model(handle, model.c_str(), &description, &error) != HPS_OK) {
        *message = sentence(error, "hps_describe_model");
        return nullptr;
    }
    Combiner *combiner = description.fusion_group_count < description.table_count ? new Combiner(handle, model) : nullptr;
    (*combiners)[key] = combiner;
    return combiner;
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

// Not marked stateful: a lookup has no side effect, and TensorFlow orders the
// stateful ops of a tf.function one after another (automatic control
// dependencies), which would run the layers' lookups one at a time and leave
// nothing to combine. Ids given as constants may be looked up once, when the
// graph is optimized.
REGISTER_OP("HpsLookup")
    .Input("ids: Tid")
    .Output("embeddings: float")
    .Attr("Tid: {int32, int64}")
    .Attr("model_name: string")
    .Attr("table_id: int")
    .Attr("emb_vec_size: int")
    .Attr("ps_config_file: string")
    .Attr("global_batch_size: int = 1")
    .SetShapeFn([](shape_inference::InferenceContext *c) {
        int64_t size;
        TF_RETURN_IF_ERROR(c->GetAttr("emb_vec_size", &size));
        shape_inference::ShapeHandle out;
        TF_RETURN_IF_ERROR(c->Concatenate(c->input(0), c->Vector(size), &out));
        c->set_output(0, out);
        return absl::OkStatus();
    })
    .Doc("Looks up the vectors of `ids` in table `table_id` of model `model_name` of the HPS configuration `ps_config_file`.");

class HpsLookupOp : public AsyncOpKernel {
  public:
    explicit HpsLookupOp(OpKernelConstruction *context) : AsyncOpKernel(context) {
        OP_REQUIRES_OK(context, context->GetAttr("model_name", &model_));
        OP_REQUIRES_OK(context, context->GetAttr("table_id", &table_));
        OP_REQUIRES_OK(context, context->GetAttr("emb_vec_size", &size_));
        OP_REQUIRES_OK(context, context->GetAttr("ps_config_file", &config_));
        OP_REQUIRES(context, size_ > 0, errors::InvalidArgument("emb_vec_size must be positive, not ", size_));
    }

    void ComputeAsync(OpKernelContext *context, DoneCallback done) override {
        OP_REQUIRES_OK_ASYNC(context, Resolve(), done);
        // Set once by Resolve, before `resolved_` is published; read-only from then on.
        hps_handle *handle = handle_;
        Combiner *combiner = combiner_;
        const Tensor &ids = context->input(0);
        TensorShape shape = ids.shape();
        shape.AddDim(size_);
        Tensor *output = nullptr;
        OP_REQUIRES_OK_ASYNC(context, context->allocate_output(0, shape, &output), done);
        const uint64_t count = static_cast<uint64_t>(ids.NumElements());
        const hps_key_type key_type = ids.dtype() == DT_INT64 ? HPS_KEYS_INT64 : HPS_KEYS_INT32;
        if (combiner && count > 0) {
            // The input and output tensors live until `done` is called.
            hps_lookup_request lookup{static_cast<int32_t>(table_), ids.data(), count, output->flat<float>().data()};
            combiner->Submit({lookup, key_type, [context, done](const std::string &failure) {
                                  if (!failure.empty()) context->CtxFailure(errors::InvalidArgument(failure));
                                  done();
                              }});
            return;
        }
        char *error = nullptr;
        hps_status status = hps_lookup(handle, model_.c_str(), static_cast<int32_t>(table_), ids.data(), key_type, count,
                                       output->flat<float>().data(), count * static_cast<uint64_t>(size_),
                                       HPS_MEMORY_HOST, 0, &error);
        if (status != HPS_OK) context->CtxFailure(errors::InvalidArgument(sentence(error, "hps_lookup")));
        done();
    }

  private:
    // The kernel's handle, its table checked (it exists and holds vectors of
    // emb_vec_size floats) and its model's combiner, found at the first call
    // and kept by the kernel, so that a call after it takes no lock and no
    // map lookup by name. A failure is not kept: the next call tries again.
    absl::Status Resolve() {
        if (resolved_.load(std::memory_order_acquire)) return absl::OkStatus();
        std::lock_guard<std::mutex> lock(resolve_mutex_);
        if (resolved_.load(std::memory_order_relaxed)) return absl::OkStatus();
        std::string failure;
        hps_handle *handle = open_once(config_, &failure);
        if (!handle) return errors::InvalidArgument(failure);
        std::string index = std::to_string(table_);
        int32_t found = 0, size = 0;
        char *error = nullptr;
        if (hps_table_info(handle, model_.c_str(), index.c_str(), &found, &size, &error) != HPS_OK) {
            return errors::InvalidArgument(sentence(error, "hps_table_info"));
        }
        if (size != size_) {
            return errors::InvalidArgument("emb_vec_size is ", size_, " but table ", table_, " of model ", model_, " in ",
                                           config_, " holds vectors of ", size, " floats.");
        }
        Combiner *combiner = combiner_for(handle, config_, model_, &failure);
        if (!failure.empty()) return errors::InvalidArgument(failure);
        handle_ = handle;
        combiner_ = combiner;
        resolved_.store(true, std::memory_order_release);
        return absl::OkStatus();
    }

    std::string model_;
    int64_t table_ = 0;
    int64_t size_ = 0;
    std::string config_;
    std::mutex resolve_mutex_;
    std::atomic<bool> resolved_{false};
    hps_handle *handle_ = nullptr;
    Combiner *combiner_ = nullptr;
};

REGISTER_KERNEL_BUILDER(Name("HpsLookup").Device(DEVICE_CPU), HpsLookupOp);
