"""swift-hps's PyTorch module, with the name and arguments of HugeCTR's
`hps_torch`: `LookupLayer(ps_config_file, model_name, table_id, emb_vec_size)`,
a `torch.nn.Module` whose `forward(keys)` returns the vectors of `keys` (int32
or int64, any shape) as float32 of shape `keys.shape + [emb_vec_size]`.

The lookup runs in process in swift-hps's library (libhps_c.so, through
`swift_hps.library`); the configuration is opened once per process by the
first layer naming it. CPU tensors are looked up into a new CPU tensor. For
CUDA tensors the output is written on their device by the model's GPU tables
(the model must be served from that GPU: `gpucache: true`, the device in its
`deployed_device_list`), after PyTorch's current stream has finished the work
queued before the call; the keys are read from the host (version 1 of the C
interface takes host keys), so CUDA keys are copied there first.
"""

import torch

from swift_hps import library

__all__ = ["LookupLayer"]


class LookupLayer(torch.nn.Module):
    def __init__(self, ps_config_file: str, model_name: str, table_id: int, emb_vec_size: int):
        super().__init__()
        self.ps_config_file = ps_config_file
        self.model_name = model_name
        self.table_id = int(table_id)
        self.emb_vec_size = int(emb_vec_size)
        self._handle = library.Handle.shared(ps_config_file)
        index, size = self._handle.table_info(model_name, self.table_id)
        if size != self.emb_vec_size:
            raise ValueError(f"emb_vec_size is {self.emb_vec_size} but table {self.table_id} of model {model_name} in "
                             f"{ps_config_file} holds vectors of {size} floats.")

    def forward(self, keys: torch.Tensor) -> torch.Tensor:
        if not isinstance(keys, torch.Tensor):
            raise TypeError(f"LookupLayer takes a torch.Tensor of keys, not {type(keys).__name__}")
        if keys.dtype not in (torch.int32, torch.int64):
            raise TypeError(f"LookupLayer takes int32 or int64 keys, not {keys.dtype}")
        key_type = library.KEYS_INT64 if keys.dtype == torch.int64 else library.KEYS_INT32
        host_keys = keys.detach().to("cpu").contiguous()
        count = host_keys.numel()
        output = torch.empty(tuple(keys.shape) + (self.emb_vec_size,), dtype=torch.float32, device=keys.device)
        if keys.is_cuda:
            # The output's memory may have been freed by work still queued on this stream.
            torch.cuda.current_stream(keys.device).synchronize()
            self._handle.lookup(self.model_name, self.table_id, host_keys.data_ptr(), key_type, count,
                                output.data_ptr(), output.numel(), library.MEMORY_DEVICE, keys.device.index or 0)
        else:
            self._handle.lookup(self.model_name, self.table_id, host_keys.data_ptr(), key_type, count,
                                output.data_ptr(), output.numel())
        return output

    def extra_repr(self):
        return (f"ps_config_file={self.ps_config_file!r}, model_name={self.model_name!r}, table_id={self.table_id}, "
                f"emb_vec_size={self.emb_vec_size}")
