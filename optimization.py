"""Optimizers of the original BERT recipe: Adam with decoupled weight decay, and LAMB.

The original AdamW, kept on purpose because published results depend on it:
  m = beta1 * m + (1 - beta1) * g
  v = beta2 * v + (1 - beta2) * g^2
  w = w - lr * (m / (sqrt(v) + epsilon) + weight_decay * w)     # decay skipped for LayerNorm/bias
with NO bias correction of m and v, gradients clipped to global norm 1.0, and a learning rate that
rises linearly over the warm-up steps and then falls linearly to zero at `num_train_steps`.

Slots are variables named `<variable name>/adam_m` and `<variable name>/adam_v`, the names the
original checkpoints use (LAMB keeps the same two moments under the same names).

Under `tf.distribute`, `apply_gradients` is called in replica context with gradients that are
already all-reduced (identical on every replica); it hands over to cross-replica context and updates
each device's copy with `strategy.extended.update`, so variables stay in sync without another
all-reduce.
"""

import re

import tensorflow as tf


def learning_rate_schedule(init_lr, num_train_steps, num_warmup_steps):
    """lr(step): init_lr * step / warmup during warm-up, then init_lr * (1 - step / total).

    As the original: the linear decay is counted from step 0 (not from the end of warm-up) and
    reaches zero at `num_train_steps`; `step` is the number of updates already applied.
    """
    init_lr = float(init_lr)
    total = float(max(num_train_steps, 1))
    warmup = float(num_warmup_steps or 0)

    def schedule(step):
        step = tf.cast(step, tf.float32)
        decayed = init_lr * (1.0 - tf.minimum(step, total) / total)
        if warmup <= 0:
            return decayed
        warming = init_lr * step / warmup
        return tf.where(step < warmup, warming, decayed)

    return schedule


DEFAULT_EXCLUDE_FROM_WEIGHT_DECAY = ("LayerNorm", "layer_norm", "bias")


class _Optimizer(tf.Module):
    """Shared machinery: named slots, decay exclusions, distribution-aware updates."""

    slot_names = ("adam_m", "adam_v")

    def __init__(self, learning_rate, weight_decay_rate, exclude_from_weight_decay, name):
        super().__init__(name=name)
        self.learning_rate = learning_rate if callable(learning_rate) else (lambda _: learning_rate)
        self.weight_decay_rate = weight_decay_rate
        self.exclude_from_weight_decay = tuple(exclude_from_weight_decay or ())
        self.slots = {}  # {variable name: (m, v)}

    def build(self, named_trainable):
        """Creates zero slots for {name: variable}; call under the strategy's scope."""
        for name, variable in named_trainable.items():
            if name not in self.slots:
                self.slots[name] = tuple(
                    tf.Variable(tf.zeros(variable.shape, tf.float32), trainable=False,
                                name=f"{name}/{slot}") for slot in self.slot_names)

    def slot_variables(self):
        """{'<name>/adam_m': variable, '<name>/adam_v': variable, ...} for checkpoints."""
        return {f"{name}/{slot}": var for name, pair in self.slots.items()
                for slot, var in zip(self.slot_names, pair)}

    def uses_weight_decay(self, name):
        if not self.weight_decay_rate:
            return False
        return not any(re.search(pattern, name) for pattern in self.exclude_from_weight_decay)

    def apply_gradients(self, named_grads, named_vars, step):
        """Applies one update. Call in replica context (or outside any strategy).

        named_grads / named_vars: {name: gradient} / {name: variable} with the same keys.
        step: the global step variable (updates applied so far); the learning rate is lr(step).
        Returns the learning rate used.
        """
        lr = self.learning_rate(step)
        items = [(name, named_grads[name], named_vars[name]) for name in sorted(named_grads)]

        def cross_replica_apply(strategy, items, lr):
            updates = []
            for name, grad, var in items:
                m, v = self.slots[name]
                updates += strategy.extended.update(
                    var, self._update, args=(grad, m, v, lr, self.uses_weight_decay(name)),
                    group=False)
            return tf.group(updates)

        tf.distribute.get_replica_context().merge_call(cross_replica_apply, args=(items, lr))
        return lr

    def _update(self, var, grad, m, v, lr, decay):
        raise NotImplementedError


class AdamWeightDecay(_Optimizer):
    """The original BERT optimizer (see the module docstring)."""

    def __init__(self, learning_rate, weight_decay_rate=0.01, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-6, exclude_from_weight_decay=DEFAULT_EXCLUDE_FROM_WEIGHT_DECAY,
                 name="AdamWeightDecay"):
        super().__init__(learning_rate, weight_decay_rate, exclude_from_weight_decay, name)
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon

    def _update(self, var, grad, m, v, lr, decay):
        if decay:  # decoupled: w * (1 - lr * wd), then the Adam step (which does not read w)
            # (performance: one multiply and an assign, not assign_sub's read-modify-write)
            var.assign(var * (1.0 - lr * self.weight_decay_rate))
        # The fused kernel with beta powers of 0 is exactly Adam without bias correction:
        # its step size lr * sqrt(1 - 0) / (1 - 0) is lr.
        return tf.raw_ops.ResourceApplyAdam(
            var=var.handle, m=m.handle, v=v.handle, beta1_power=0.0, beta2_power=0.0, lr=lr,
            beta1=self.beta_1, beta2=self.beta_2, epsilon=self.epsilon,
            grad=tf.convert_to_tensor(grad))


class Lamb(_Optimizer):
    """LAMB (You et al., 2019) for large-batch pretraining.

    Adam moments with bias correction, decoupled weight decay, and a per-variable trust ratio
    ||w|| / ||update|| that scales the step; LayerNorm and bias variables skip both the decay and
    the trust ratio, as is customary for BERT.
    """

    def __init__(self, learning_rate, weight_decay_rate=0.01, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-6, exclude_from_weight_decay=DEFAULT_EXCLUDE_FROM_WEIGHT_DECAY,
                 name="Lamb"):
        super().__init__(learning_rate, weight_decay_rate, exclude_from_weight_decay, name)
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon
        self._step = None

    def apply_gradients(self, named_grads, named_vars, step):
        self._step = tf.cast(step, tf.float32) + 1.0  # bias correction counts from 1
        return super().apply_gradients(named_grads, named_vars, step)

    def _update(self, var, grad, m, v, lr, decay):
        grad = tf.convert_to_tensor(grad)
        m_new = m.assign(self.beta_1 * m + (1.0 - self.beta_1) * grad)
        v_new = v.assign(self.beta_2 * v + (1.0 - self.beta_2) * tf.square(grad))
        m_hat = m_new / (1.0 - tf.pow(self.beta_1, self._step))
        v_hat = v_new / (1.0 - tf.pow(self.beta_2, self._step))
        update = m_hat / (tf.sqrt(v_hat) + self.epsilon)
        if decay:
            update += self.weight_decay_rate * var
            w_norm, u_norm = tf.norm(var), tf.norm(update)
            ratio = tf.where((w_norm > 0) & (u_norm > 0), w_norm / u_norm, 1.0)
            update *= ratio
        return var.assign_sub(lr * update)


OPTIMIZERS = {"adamw": AdamWeightDecay, "lamb": Lamb}


def create_optimizer(init_lr, num_train_steps, num_warmup_steps, optimizer="adamw",
                     weight_decay_rate=0.01):
    """The original recipe's optimizer with its learning-rate schedule.

    Unlike the original (which returned a TF1 train op), this returns an optimizer object; the
    training runner (training.py) computes, clips and applies the gradients.
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; expected one of {sorted(OPTIMIZERS)}")
    schedule = learning_rate_schedule(init_lr, num_train_steps, num_warmup_steps)
    return OPTIMIZERS[optimizer](schedule, weight_decay_rate=weight_decay_rate)


def clip_by_global_norm(named_grads, clip_norm=1.0):
    """Clips {name: gradient} to a global norm of `clip_norm`; returns (clipped, global norm)."""
    names = sorted(named_grads)
    clipped, norm = tf.clip_by_global_norm([named_grads[n] for n in names], clip_norm)
    return dict(zip(names, clipped)), norm
