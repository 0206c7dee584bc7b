"""What training learns about the columns (fill values, categories, scaling) and applies the same way everywhere after."""
import warnings

import numpy as np
import torch
import torch.nn as nn

# A categorical feature of more than MANY_VALUES values keeps those in at least RARE_ROWS + 1 training rows (at most
# MOST_CATEGORIES, the most frequent); the rarer ones, and those never seen, are one more value, 'other'
MANY_VALUES = 100
RARE_ROWS = 1
MOST_CATEGORIES = 1000
# A number feature may also be encoded over BINS bins between the quantiles of its training rows (piecewise-linear
# encoding): an input a bin, 0 below the bin, 1 above it and rising across it, so that a small network finds the
# thresholds that trees find (Gorishniy, Rubachev and Babenko, "On embeddings for numerical features", 2022)
BINS = 8


class InputScaling:
    """The scaling of the number features that training learns (part of Preprocessing).

    The network trains on each feature standardized with the training rows' mean and
    standard deviation, computed in float64 (a float32 mean of a column near 1.7e9 is off by
    hundreds). The saved model takes raw values: the scaling is folded into layer1. Folding
    is exact on paper but not in float32 when a column sits far from zero for its spread
    (a time stamp, a value near 1e7): W'x and b' then cancel in large numbers. Such a column
    gets an offset, subtracted from the raw value before the network (in NetModel.json, and
    as a Sub node in Network.onnx). A constant column gets zero weights: it cannot help.
    """

    OFFSET_RATIO = 100  # a column whose mean is more than this many standard deviations from zero gets an offset

    def __init__(self, mean, std, offset=None):
        self.mean = np.asarray(mean, dtype=np.float64)
        self.std = np.asarray(std, dtype=np.float64)
        self.offset = None if offset is None else np.asarray(offset, dtype=np.float32)

    @classmethod
    def fit(cls, inputs):
        values = inputs.numpy()
        columns = [values[:, position].astype(np.float64) for position in range(values.shape[1])]  # one at a time
        mean = np.array([column.mean() if len(column) else 0.0 for column in columns])
        std = np.array([column.std() if len(column) else 0.0 for column in columns])
        del columns
        std = np.where(std > 0, std, 0.0)
        offset = np.where(np.abs(mean) > cls.OFFSET_RATIO * std, mean, 0.0).astype(np.float32)
        offset[std == 0] = 0  # a constant column's weights are zero: no offset needed
        return cls(mean, std, offset if offset.any() else None)

    @property
    def constant(self):
        """Positions of the columns that hold a single value in the training rows."""
        return np.flatnonzero(self.std == 0)

    def standardized(self, inputs):
        """Coded rows, standardized for training (a constant column becomes 0).

        Only the first len(mean) columns are numbers; category codes after them stay as they are.
        """
        scale = np.where(self.std > 0, self.std, 1.0)
        values = inputs.numpy().copy()
        for position in range(len(self.mean)):  # in float64, a column at a time
            values[:, position] = (values[:, position].astype(np.float64) - self.mean[position]) / scale[position]
        return torch.from_numpy(values)

    def fold(self, layer):
        """Make the trained network's first layer (an nn.Linear) take raw numbers (minus the offset):
        W' = W / std, b' = b - W' (mean - offset).

        Only the number features' columns change; the categories' one-hot columns come after
        them and are not scaled.
        """
        count = len(self.mean)
        full = layer.weight.detach().cpu().numpy().astype(np.float64)
        weight = np.where(self.std > 0, full[:, :count] / np.where(self.std > 0, self.std, 1.0), 0.0)
        centre = self.mean - (0.0 if self.offset is None else self.offset.astype(np.float64))
        bias = layer.bias.detach().cpu().numpy().astype(np.float64) - weight @ np.where(self.std > 0, centre, 0.0)
        full[:, :count] = weight
        with torch.no_grad():
            layer.weight.copy_(torch.from_numpy(full.astype(np.float32)))
            layer.bias.copy_(torch.from_numpy(bias.astype(np.float32)))
        return layer


class Preprocessing:
    """Everything learned from the training rows, in one place: fill values, categories and scaling.

    fit() learns it on the training rows only; encode() turns raw rows into the network's
    coded inputs (numbers with blanks filled, then one category number per categorical
    feature); the model's record (ModelRecord, NetModel.json) keeps it and gives it back;
    onnx_export.onnx_preprocessing writes the same steps as ONNX nodes. Training, testing,
    prediction and the export all go through this one object.

    features: the number features; fill: each one's fill value (the training rows' median);
    categorical: the categorical features; categories: for each, its values in the order of
    its one-hot columns ('' for a blank seen in training; a value never seen gets no column,
    or counts as 'other');
    scaling: the number features' InputScaling; other: per categorical feature, whether it has
    more than MANY_VALUES values, the rare ones (in a single training row) and those never seen
    counting as one more one-hot column, 'other' (scikit-learn's OneHotEncoder with
    min_frequency and max_categories).
    """

    def __init__(self, features, fill, categorical=(), categories=(), scaling=None, other=None, bins=None):
        self.features, self.fill = list(features), np.asarray(fill, dtype=np.float64)
        self.categorical, self.categories = list(categorical), [list(values) for values in categories]
        self.scaling = scaling
        self.other = [bool(flag) for flag in other] if other is not None else [False] * len(self.categories)
        self.bins = [np.asarray(edges, dtype=np.float64) for edges in bins] if bins else \
            [np.zeros(0)] * len(self.features)

    @classmethod
    def fit(cls, data, rows, bins=0):
        """Learn it from the training rows; bins: encode each number feature over that many quantile bins too
        (0: not)."""
        numbers = data.inputs[rows].numpy()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a column blank in every training row
            fill = np.array([np.nanmedian(numbers[:, position]) if len(numbers) else np.nan
                             for position in range(numbers.shape[1])], dtype=np.float64)
        fill = np.where(np.isnan(fill), 0.0, fill)
        blank = np.isnan(numbers)
        filled = np.where(blank, fill.astype(np.float32), numbers)
        categories, other = [], []
        for codes, values in data.categories:
            present, counts = np.unique(codes[rows.numpy()], return_counts=True)
            kept = [code for code in present if code >= 0]
            if len(kept) > MANY_VALUES:  # the frequent ones; the rare ones (and later unseen ones) as 'other'
                frequent = sorted((pair for pair in zip(counts[present >= 0], kept) if pair[0] > RARE_ROWS),
                                  key=lambda pair: (-pair[0], values[pair[1]]))[:MOST_CATEGORIES]
                kept = [code for _, code in frequent]
            categories.append(sorted(values[code] for code in kept) + ([""] if (present < 0).any() else []))
            other.append(len(kept) < len([code for code in present if code >= 0]))
        edges = [quantile_edges(filled[:, position], bins) for position in range(filled.shape[1])] if bins else None
        return cls(data.features, fill, data.categorical, categories, InputScaling.fit(torch.from_numpy(filled)),
                   other, edges)

    @property
    def sizes(self):
        """Each categorical feature's one-hot columns: one per value kept, and one for 'other' when it has one."""
        return [len(values) + other for values, other in zip(self.categories, self.other)]

    @property
    def bin_count(self):
        """The piecewise-linear inputs of the number features: one a bin."""
        return sum(max(len(edges) - 1, 0) for edges in self.bins)

    @property
    def width(self):
        """The network's input size: the number features, their bins, then each category's one-hot column."""
        return len(self.features) + self.bin_count + sum(self.sizes)

    @property
    def offset(self):
        return None if self.scaling is None else self.scaling.offset

    @property
    def plain(self):
        """A model of numbers only that cannot fill a blank (the tutorial's own checkpoint): Network.onnx is the
        tutorial's graph alone. Any model DataClassifier trains fills blanks, in Network.onnx too."""
        return not self.categorical and self.offset is None and bool(np.isnan(self.fill).all())

    def encode(self, numbers, categories=()):
        """Coded inputs: numbers [rows, features] (NaN: blank) filled, then each categorical feature's
        category number (-1: a value the model has never seen). categories: per categorical feature,
        (codes, values) as Data holds them."""
        numbers = numbers.numpy() if isinstance(numbers, torch.Tensor) else np.asarray(numbers, dtype=np.float32)
        coded = np.empty((len(numbers), len(self.features) + len(self.categorical)), dtype=np.float32)
        count = len(self.features)
        coded[:, :count] = np.where(np.isnan(numbers), self.fill.astype(np.float32), numbers)
        for position, ((codes, values), known, other) in enumerate(zip(categories, self.categories, self.other)):
            number_of = {value: number for number, value in enumerate(known)}
            rest = len(known) if other else -1  # a rare or unseen value: 'other', or no column at all
            lookup = np.array([number_of.get(value, rest) for value in values] + [number_of.get("", rest)], np.float32)
            coded[:, count + position] = lookup[codes]  # code -1 (a blank) picks the last: '' or the rest
        return torch.from_numpy(coded)

    def transform(self, numbers, categories=()):
        """The trained network's input for raw rows: coded (encode), then standardized (the saved model has the
        scaling folded into its weights and takes encode's rows)."""
        return self.scaling.standardized(self.encode(numbers, categories))

    def unseen(self, categories):
        """Per categorical feature, the values in `categories` the model does not tell apart (never seen in
        training, or rare there), and whether they count as 'other': (column, values, other)."""
        found = []
        for column, (codes, values), known, other in zip(self.categorical, categories, self.categories, self.other):
            used = set(np.unique(codes[codes >= 0]).tolist())
            new = [values[code] for code in sorted(used) if values[code] not in known]
            if new:
                found.append((column, new, other))
        return found

    def model(self, network):
        """The saved network as it takes coded rows: itself, or behind the offset, the bins and the category
        lookup."""
        return network if not self.categorical and self.offset is None and not self.bin_count else \
            CodedInputs(network, len(self.features), self.sizes, self.offset, self.piecewise(standardized=False))

    def training_model(self, network):
        """The network as it trains on transform's rows (standardized numbers, then category numbers)."""
        return network if not self.categorical and not self.bin_count else \
            CodedInputs(network, len(self.features), self.sizes, None, self.piecewise(standardized=True))

    def piecewise(self, standardized):
        """The bins as a PiecewiseLinear for numbers standardized as in training, or for raw numbers less the
        offset, as the saved model takes them (None: no bins)."""
        if not self.bin_count:
            return None
        mean, std = self.scaling.mean, np.where(self.scaling.std > 0, self.scaling.std, 1.0)
        offset = np.zeros(len(self.features)) if self.offset is None else self.offset.astype(np.float64)
        index, low, scale = [], [], []
        for position, edges in enumerate(self.bins):
            if len(edges) < 2:
                continue
            shift, unit = (mean[position], std[position]) if standardized else (offset[position], 1.0)
            index += [position] * (len(edges) - 1)
            low += list((edges[:-1] - shift) / unit)
            scale += list(unit / np.diff(edges))
        return PiecewiseLinear(index, low, scale)


def quantile_edges(values, bins):
    """The edges of `bins` bins between the quantiles of a feature's training values (fewer where values repeat);
    none for a feature of fewer than three different edges (yes/no, a constant)."""
    edges = np.unique(np.quantile(values.astype(np.float64), np.linspace(0, 1, bins + 1))) if len(values) else []
    return np.asarray(edges, dtype=np.float64) if len(edges) >= 3 else np.zeros(0)


class PiecewiseLinear(nn.Module):
    """The number features' bins: for bin b of feature j, z = (x_j - low_b) * scale_b clipped to [0, 1], as
    1 - relu(1 - relu(z)) (the operators Windows ML reads since opset 7; relu(z) - relu(z - 1) would give 0 for a
    value far past the edges, where z - 1 rounds to z)."""

    def __init__(self, index, low, scale):
        super().__init__()
        self.register_buffer("index", torch.tensor(index, dtype=torch.long))
        self.register_buffer("low", torch.tensor(np.asarray(low, np.float32)))
        self.register_buffer("scale", torch.tensor(np.asarray(scale, np.float32)))

    def forward(self, numbers):
        z = (numbers[:, self.index] - self.low) * self.scale
        return 1 - torch.relu(1 - torch.relu(z))


class CodedInputs(nn.Module):
    """The tutorial's Network fed coded rows: numbers, then one category number per categorical feature.

    Each batch's one-hot columns are made here from the category numbers (a number -1, a
    value never seen, sets none of them), so that a big table is held as a few numbers a
    row, not as hundreds of mostly-zero columns. The numbers first lose their offset (see
    InputScaling).
    """

    def __init__(self, network, number_count, sizes, offset=None, bins=None):
        super().__init__()
        self.network, self.number_count, self.one_hot_count = network, number_count, int(sum(sizes))
        self.bins = bins
        self.register_buffer("starts", torch.tensor(np.cumsum([0] + list(sizes[:-1])), dtype=torch.long)
                             if sizes else torch.zeros(0, dtype=torch.long))
        self.register_buffer("sizes", torch.tensor(list(sizes), dtype=torch.long))
        self.register_buffer("offset", torch.zeros(number_count) if offset is None
                             else torch.as_tensor(offset, dtype=torch.float32))

    def forward(self, x):
        numbers = x[:, :self.number_count] - self.offset
        if self.bins is not None:
            numbers = torch.cat([numbers, self.bins(numbers)], dim=1)
        if not self.one_hot_count:
            return self.network(numbers)
        codes = x[:, self.number_count:].long()
        known = (codes >= 0) & (codes < self.sizes)
        one_hot = torch.zeros(len(x), self.one_hot_count, device=x.device)
        rows = torch.arange(len(x), device=x.device).unsqueeze(1).expand_as(codes)
        one_hot[rows[known], (codes + self.starts)[known]] = 1
        return self.network(torch.cat([numbers, one_hot], dim=1))


def rows_of(data, rows):
    """The given rows of the data, as Preprocessing.encode takes them: (numbers, categories)."""
    return data.inputs[rows], [(codes[rows.numpy()], values) for codes, values in data.categories]


def raw_rows(data, rows):
    """The given rows as an app sends them to Network.onnx: numbers (NaN: blank) and texts ('': blank)."""
    texts = np.empty((len(rows), len(data.categories)), dtype=object)
    for position, (codes, values) in enumerate(data.categories):
        texts[:, position] = np.array(values + [""], dtype=object)[codes[rows.numpy()]]
    return data.inputs[rows], texts


def show_preprocessing(data, preprocessing, train_rows):
    """Say how blanks are filled, and which number columns cannot help (a single value in training)."""
    blanks = torch.isnan(data.inputs).sum(dim=0).tolist()
    filled = [f"{column} {count} (with {value:g})" for column, count, value in
              zip(data.features, blanks, preprocessing.fill) if count]
    if filled:
        print(f"Blank cells filled inside the model with the training rows' median: {', '.join(filled)}")
    own = [f"{column} {int((codes < 0).sum())}" for column, (codes, _) in zip(data.categorical, data.categories)
           if (codes < 0).any()]
    if own:
        print(f"Blank cells in categorical features, a category of their own: {', '.join(own)}")
    grouped = [f"{column} {len(values) - len([value for value in known if value])}" for column, (_, values), known, other
               in zip(data.categorical, data.categories, preprocessing.categories, preprocessing.other) if other]
    if grouped:
        print(f"Rare values grouped as one category, 'other' (past {MANY_VALUES} values, those of a single training "
              f"row): {', '.join(grouped)}")
    binned = [f"{column} {len(edges) - 1}" for column, edges in zip(data.features, preprocessing.bins) if len(edges)]
    if binned:
        print(f"Number features also given to the network in bins between their training quantiles, bins: "
              f"{', '.join(binned)}")
    constant = preprocessing.scaling.constant if preprocessing.scaling is not None and len(train_rows) else []
    for position in constant:
        print(f"Note: '{data.features[position]}' holds a single value ({preprocessing.scaling.mean[position]:g}) "
              "in every training row; it cannot tell the classes apart and the model ignores it")
    if filled or own or grouped or binned or len(constant):
        print()
