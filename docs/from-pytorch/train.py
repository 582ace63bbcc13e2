# The PyTorch script of docs/from-pytorch.md: digits, standardization, Linear + BatchNorm + ReLU +
# Dropout blocks, cross-entropy + L2, Adam with a cosine schedule and gradient clipping, early
# stopping with the best weights restored, and a safetensors round trip.
import copy
import gzip

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset, random_split

torch.manual_seed(0)
data = np.loadtxt(gzip.open("examples/data/digits.csv.gz"), delimiter=",", dtype=np.float32)
dataset = TensorDataset(torch.tensor(data[:, :-1]), torch.tensor(data[:, -1]).long())
train, validation = random_split(dataset, [0.8, 0.2])
x_train, y_train = dataset[train.indices]
x_valid, y_valid = dataset[validation.indices]
mean, std = x_train.mean(0), x_train.std(0, correction=0)
std[std == 0] = 1
x_train, x_valid = (x_train - mean) / std, (x_valid - mean) / std
loader = DataLoader(TensorDataset(x_train, y_train), batch_size=64, shuffle=True)


def block(inputs, outputs):
    return [nn.Linear(inputs, outputs), nn.BatchNorm1d(outputs), nn.ReLU(), nn.Dropout(0.2)]


model = nn.Sequential(*block(64, 128), *block(128, 64), nn.Linear(64, 10))
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=30)
best_loss, best_state, bad_epochs = float("inf"), None, 0
for epoch in range(30):
    model.train()
    for x, y in loader:
        l2 = sum((m.weight**2).sum() for m in model if isinstance(m, nn.Linear))
        loss = F.cross_entropy(model(x), y) + 1e-4 * l2
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
    schedule.step()
    model.eval()
    with torch.no_grad():
        logits = model(x_valid)
    valid_loss = F.cross_entropy(logits, y_valid).item()
    accuracy = (logits.argmax(1) == y_valid).float().mean().item()
    print(f"epoch {epoch}: validation loss {valid_loss:.4f}, accuracy {accuracy:.3f}")
    if valid_loss < best_loss:
        best_loss, best_state, bad_epochs = valid_loss, copy.deepcopy(model.state_dict()), 0
    else:
        bad_epochs += 1
        if bad_epochs == 5:
            break
model.load_state_dict(best_state)
save_file(model.state_dict(), "digits.safetensors")
model.load_state_dict(load_file("digits.safetensors"))
