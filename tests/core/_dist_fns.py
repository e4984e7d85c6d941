import torch
import torch.distributed as dist


def allreduce_rank(rank: int, world_size: int) -> float:
    x = torch.tensor([float(rank + 1)])
    dist.all_reduce(x)
    return float(x.item())
