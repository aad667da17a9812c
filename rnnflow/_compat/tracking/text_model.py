"""`rnnflow.tracking.text_model`: the module of the pyfunc class that text models were pickled
as, before they were logged from code.

Such a model's pickle holds an instance of `TextPyfunc` by this name and nothing of its
behaviour; its MLmodel has no model_config naming a loader. Unpickled as the pyfunc of today,
it would look for that loader and fail, so the class here loads the model's three files, which
have not changed since, through the public loader. It extends today's pyfunc for its predict,
and so that MLflow stays imported in rnnflow/tracking/ alone; importing text_pyfunc.py sets
MLflow's model-from-code slot, which each model from code sets anew when it loads.
"""

from rnnflow.api import load_text_model
from rnnflow.tracking.text_pyfunc import TextPyfunc as _FromCode


class TextPyfunc(_FromCode):
    def load_context(self, context) -> None:
        self.text_model = load_text_model(dict(context.artifacts))
