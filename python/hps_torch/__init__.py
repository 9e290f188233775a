"""swift-hps's PyTorch module, with the name and arguments of HugeCTR's
`hps_torch`: `LookupLayer(ps_config_file, model_name, table_id, emb_vec_size)`,
a `torch.nn.Module` whose `forward(keys)` returns the vectors of `keys` (int32
or int64, any shape) as float32 of shape `keys.shape + [emb_vec_size]`.

The lookup runs in process in swift-hps's library (libhps_c.so, through
`swift_hps.library`); the configuration is opened once per process by the
first layer naming it. CPU tensors are looked up into a new CPU tensor. For
CUDA tensors the output is written on their device by the model's GPU tables
(the model must be served from that GPU: `gpucache: true`, the device in its
`deployed_device_list`) from the keys on the device, in PyTorch's current
stream's order (`hps_lookup_device`): after the work queued on it before the
call, and before the work queued after, as PyTorch's own ops. Nothing goes
through the host but the keys that no GPU table holds. CUDA keys are converted on the device to
the model's key type (int64 for `supportlonglong: true`; else int32, which the
GPU reads as unsigned as HugeCTR does, after checking that int64 keys fit).
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
        self._key_type = None
        index, size = self._handle.table_info(model_name, self.table_id)
        if size != self.emb_vec_size:
            raise ValueError(f"emb_vec_size is {self.emb_vec_size} but table {self.table_id} of model {model_name} in "
                             f"{ps_config_file} holds vectors of {size} floats.")

    def forward(self, keys: torch.Tensor) -> torch.Tensor:
        if not isinstance(keys, torch.Tensor):
            raise TypeError(f"LookupLayer takes a torch.Tensor of keys, not {type(keys).__name__}")
        if keys.dtype not in (torch.int32, torch.int64):
            raise TypeError(f"LookupLayer takes int32 or int64 keys, not {keys.dtype}")
        output = torch.empty(tuple(keys.shape) + (self.emb_vec_size,), dtype=torch.float32, device=keys.device)
        if keys.is_cuda:
            self._lookup_device(keys.detach(), output)
            return output
        key_type = library.KEYS_INT64 if keys.dtype == torch.int64 else library.KEYS_INT32
        host_keys = keys.detach().contiguous()
        self._handle.lookup(self.model_name, self.table_id, host_keys.data_ptr(), key_type, host_keys.numel(),
                            output.data_ptr(), output.numel())
        return output

    def _lookup_device(self, keys: torch.Tensor, output: torch.Tensor):
        if self._key_type is None:
            self._key_type = self._handle.key_type(self.model_name)
        if self._key_type == library.KEYS_INT64:
            keys = keys.to(torch.int64)
        else:
            if keys.dtype == torch.int64 and keys.numel() and bool(((keys < 0) | (keys > 0xFFFFFFFF)).any()):
                bad = keys[(keys < 0) | (keys > 0xFFFFFFFF)][0].item()
                raise library.HPSError(library.KEYS, f"Key {bad} for table {self.table_id} does not fit in 32 bits; "
                                                     f"model {self.model_name} has supportlonglong false.")
            keys = keys.to(torch.int32)
        keys = keys.contiguous()
        device = keys.device.index if keys.device.index is not None else torch.cuda.current_device()
        stream = torch.cuda.current_stream(keys.device).cuda_stream
        self._handle.lookup_device(self.model_name, [(self.table_id, keys.data_ptr(), keys.numel())], self._key_type,
                                   output.data_ptr(), output.numel(), device, stream)

    def extra_repr(self):
        return (f"ps_config_file={self.ps_config_file!r}, model_name={self.model_name!r}, table_id={self.table_id}, "
                f"emb_vec_size={self.emb_vec_size}")
