"""stub"""
def format_spec(spec):
    raise NotImplementedError
